import pytest

from tests.api.conftest import error_of


@pytest.mark.django_db
def test_root(api):
    r = api.get("/api/v1/")
    assert r.status_code == 200, r.content
    assert r.json() == {"key": "crm", "role": "clerk"}


@pytest.mark.django_db
def test_no_key(client):
    error_of(client.get("/api/v1/"), 401, "unauthenticated")
    error_of(client.get("/api/v1/nothing/"), 401, "unauthenticated")


@pytest.mark.django_db
def test_unknown(api):
    error_of(api.get("/api/v1/nothing/"), 404, "not_found")
    error_of(api.put("/api/v1/accounts/", {}), 405, "method_not_allowed")
