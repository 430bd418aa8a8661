"""API keys: made by ``api_key`` and the admin, stored as a hash, revoked;
bearer authentication; the role's permissions; throttles."""

import datetime
import hashlib
import io

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from api.models import ApiKey
from tests.api.conftest import Api, error_of


def api_key(*argv):
    out, err = io.StringIO(), io.StringIO()
    call_command("api_key", *argv, stdout=out, stderr=err)
    return out.getvalue().strip(), err.getvalue()


@pytest.mark.django_db
def test_the_command_prints_the_key_once_and_stores_its_hash():
    # when
    raw, note = api_key("create", "erp", "--role", "clerk")
    # then
    key = ApiKey.objects.get()
    assert key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in str(list(ApiKey.objects.values()))
    assert raw.startswith(key.prefix) and key.prefix in note
    assert (key.name, key.role, key.user.username) == ("erp", "clerk", "key:erp")
    assert not key.user.has_usable_password()
    assert authenticate(username="key:erp", password="") is None
    assert Api(raw).get("/api/v1/").json() == {"key": "erp", "role": "clerk"}


@pytest.mark.django_db
def test_names_are_never_reused_and_roles_are_checked():
    api_key("create", "erp", "--role", "viewer")
    with pytest.raises(CommandError, match="taken"):
        api_key("create", "erp", "--role", "clerk")
    with pytest.raises(CommandError):
        api_key("create", "other", "--role", "admin")
    with pytest.raises(CommandError, match="name"):
        api_key("create", "bad name", "--role", "clerk")
    assert ApiKey.objects.count() == 1


@pytest.mark.django_db
def test_a_revoked_key_is_401():
    raw, _ = api_key("create", "erp", "--role", "clerk")
    assert Api(raw).get("/api/v1/").status_code == 200
    # when
    out, _ = api_key("revoke", "erp")
    # then
    assert out == "erp revoked"
    assert ApiKey.objects.get().revoked_at is not None
    error_of(Api(raw).get("/api/v1/"), 401, "unauthenticated")
    error_of(Api(raw).post("/api/v1/bill-runs/", {}), 401, "unauthenticated")
    with pytest.raises(CommandError, match="No API key"):
        api_key("revoke", "nobody")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header", ["Bearer bk_unknown", "Bearer", "Basic abc", "Bearer a b", "Token bk_x"]
)
def test_an_unknown_or_malformed_key_is_401(api, header):
    response = Api().client.get("/api/v1/", HTTP_AUTHORIZATION=header)
    error_of(response, 401, "unauthenticated")
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.django_db
def test_a_signed_in_session_is_no_key(client, superuser):
    client.force_login(superuser)
    error_of(client.get("/api/v1/bill-runs/"), 401, "unauthenticated")


@pytest.mark.django_db
def test_last_used_at_is_written_at_most_once_a_minute(api, clerk_key, django_assert_num_queries):
    key = clerk_key[0]
    assert key.last_used_at is None
    api.get("/api/v1/")
    first = ApiKey.objects.get().last_used_at
    assert first is not None
    api.get("/api/v1/")
    assert ApiKey.objects.get().last_used_at == first
    ApiKey.objects.update(last_used_at=timezone.now() - datetime.timedelta(minutes=2))
    api.get("/api/v1/")
    assert ApiKey.objects.get().last_used_at > first


@pytest.mark.django_db
def test_throttled_per_key(api, viewer_api, settings):
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "api_read": "2/min"}
    from rest_framework.settings import api_settings
    from rest_framework.throttling import SimpleRateThrottle

    with override_settings(
        REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    ):
        api_settings.reload()
        SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
        try:
            assert api.get("/api/v1/").status_code == 200
            assert api.get("/api/v1/").status_code == 200
            response = api.get("/api/v1/")
            error_of(response, 429, "throttled")
            assert int(response["Retry-After"]) > 0
            # another key has its own count
            assert viewer_api.get("/api/v1/").status_code == 200
        finally:
            api_settings.reload()
    SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES


@pytest.mark.django_db
def test_the_admin_makes_a_key_shows_it_once_and_revokes(client, superuser):
    client.force_login(superuser)
    response = client.post("/admin/api/apikey/add/", {"name": "crm", "role": "viewer"}, follow=True)
    assert response.status_code == 200
    key = ApiKey.objects.get()
    (message,) = [str(m) for m in response.context["messages"] if "copy it now" in str(m)]
    raw = message.split(" is ")[1].split(" ")[0]
    assert raw.startswith(key.prefix)
    assert Api(raw).get("/api/v1/").json() == {"key": "crm", "role": "viewer"}
    assert key.user.username == "key:crm"
    client.post(
        "/admin/api/apikey/",
        {"action": "revoke", "_selected_action": [key.pk]},
        follow=True,
    )
    error_of(Api(raw).get("/api/v1/"), 401, "unauthenticated")
    assert client.get(f"/admin/api/apikey/{key.pk}/change/").status_code == 200
    assert raw.encode() not in client.get(f"/admin/api/apikey/{key.pk}/change/").content
