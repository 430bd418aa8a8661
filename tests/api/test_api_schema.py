"""The OpenAPI schema validates and covers every endpoint; the browsable
docs are served from this site's static files under its CSP."""

import io
import re

import pytest
import yaml
from django.core.management import call_command
from django.urls import URLPattern, URLResolver

from api import urls as api_urls


def schema():
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    return yaml.safe_load(out.getvalue())


def endpoint_paths():
    """Every route of api/urls.py but the catch-all, schema and docs, as the
    schema writes it (``/api/v1/accounts/{number}/``)."""
    found = set()
    for pattern in api_urls.urlpatterns:
        assert isinstance(pattern, URLPattern | URLResolver)
        route = str(pattern.pattern)
        if pattern.name in ("not_found", "schema", "docs"):
            continue
        found.add("/api/v1/" + re.sub(r"<str:(\w+)>", r"{\1}", route))
    return found


@pytest.mark.django_db
def test_the_schema_validates_and_covers_every_endpoint():
    paths = schema()["paths"]
    assert endpoint_paths() <= set(paths), endpoint_paths() - set(paths)
    assert set(paths["/api/v1/bill-runs/"]) == {"get", "post"}
    assert set(paths["/api/v1/bill-runs/{number}/"]) == {"get", "delete"}
    assert set(paths["/api/v1/accounts/{number}/"]) == {"get", "patch"}
    for path in ("/api/v1/usage/", "/api/v1/bill-runs/", "/api/v1/documents/{number}/payments/"):
        assert any(p["name"] == "Idempotency-Key" for p in paths[path]["post"]["parameters"])


@pytest.mark.django_db
def test_every_run_action_answers_202_with_the_run_a_preview_s_cancel_too():
    paths = schema()["paths"]
    for action in ("post", "cancel", "retry", "email"):
        answers = paths[f"/api/v1/bill-runs/{{number}}/{action}/"]["post"]["responses"]
        assert "202" in answers and "204" not in answers, (action, set(answers))


@pytest.mark.django_db
def test_the_schema_and_docs_are_served_without_a_cdn(client):
    assert client.get("/api/v1/schema/").status_code == 200
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    page = docs.content.decode()
    assert "cdn" not in page.lower() and "https://" not in page
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources and all(s.startswith("/") for s in sources), sources
    assert "<script>" not in page  # no inline script: the CSP allows only 'self'
    assert "'unsafe-inline'" not in docs["Content-Security-Policy"]
    for source in sources:
        assert client.get(source).status_code == 200, source
