"""Sign-in: failed attempts are throttled (django-axes), a wrong password is a
clear message, and ``next`` never leads off the site."""

import pytest
from django.contrib.auth import SESSION_KEY
from django.test import Client

LOCKOUT_TEXT = "Too many failed sign-in attempts; try again in 15 minutes"
LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"


@pytest.fixture
def throttled(settings):
    """Throttling on, as in production (the test settings turn it off)."""
    settings.AXES_ENABLED = True
    settings.TRUST_X_FORWARDED_FOR = False
    return settings


def sign_in(client, path, username, password, **extra):
    return client.post(path, {"username": username, "password": password}, **extra)


@pytest.mark.django_db
def test_a_wrong_password_shows_the_form_again_with_a_clear_message(clerk):
    client = Client()

    response = sign_in(client, LOGIN, "clerk", "not-the-password")

    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert SESSION_KEY not in client.session


@pytest.mark.django_db
def test_five_failed_sign_ins_lock_the_user_out_for_fifteen_minutes(throttled, clerk):
    client = Client()
    for _ in range(4):
        assert sign_in(client, LOGIN, "clerk", "wrong").status_code == 200

    # the fifth failure reaches the limit
    fifth = sign_in(client, LOGIN, "clerk", "wrong")
    assert fifth.status_code == 429
    assert LOCKOUT_TEXT in fifth.content.decode()

    # even the right password is refused while locked out
    locked = sign_in(client, LOGIN, "clerk", "pw")
    assert locked.status_code == 429
    assert LOCKOUT_TEXT in locked.content.decode()
    assert SESSION_KEY not in client.session


@pytest.mark.django_db
def test_the_lockout_ends_after_the_cool_off(throttled, clerk):
    import datetime

    from axes.models import AccessAttempt

    client = Client()
    for _ in range(5):
        sign_in(client, LOGIN, "clerk", "wrong")
    AccessAttempt.objects.update(
        attempt_time=datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=16)
    )

    response = sign_in(client, LOGIN, "clerk", "pw")

    assert response.status_code == 302
    assert client.session[SESSION_KEY] == str(clerk.pk)


@pytest.mark.django_db
def test_the_lockout_is_by_username_and_address_together(throttled, clerk, viewer):
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    for _ in range(5):
        sign_in(attacker, LOGIN, "clerk", "wrong")

    # another user from the attacker's address still signs in
    assert sign_in(Client(REMOTE_ADDR="203.0.113.9"), LOGIN, "viewer", "pw").status_code == 302
    # the clerk from their own address still signs in
    assert sign_in(Client(REMOTE_ADDR="198.51.100.7"), LOGIN, "clerk", "pw").status_code == 302


@pytest.mark.django_db
def test_the_admin_sign_in_is_throttled_too(throttled, superuser):
    client = Client()
    for _ in range(5):
        sign_in(client, ADMIN_LOGIN, "admin", "wrong")

    response = sign_in(client, ADMIN_LOGIN, "admin", "pw")

    assert response.status_code == 429
    assert LOCKOUT_TEXT in response.content.decode()
    assert SESSION_KEY not in client.session


@pytest.mark.django_db
def test_failures_on_the_site_and_the_admin_count_together(throttled, superuser):
    client = Client()
    for path in (LOGIN, ADMIN_LOGIN, LOGIN, ADMIN_LOGIN, LOGIN):
        sign_in(client, path, "admin", "wrong")

    assert sign_in(client, ADMIN_LOGIN, "admin", "pw").status_code == 429


@pytest.mark.django_db
def test_behind_the_proxy_a_forged_forwarded_address_does_not_dodge_the_lock(throttled, clerk):
    throttled.TRUST_X_FORWARDED_FOR = True
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    for n in range(5):
        # the client forges a fresh first entry each time; the proxy appends the real one
        forwarded = f"192.0.2.{n}, 203.0.113.9"
        sign_in(Client(**proxy), LOGIN, "clerk", "wrong", HTTP_X_FORWARDED_FOR=forwarded)

    locked = sign_in(
        Client(**proxy), LOGIN, "clerk", "pw", HTTP_X_FORWARDED_FOR="192.0.2.99, 203.0.113.9"
    )
    elsewhere = sign_in(Client(**proxy), LOGIN, "clerk", "pw", HTTP_X_FORWARDED_FOR="198.51.100.7")

    assert locked.status_code == 429
    assert elsewhere.status_code == 302


@pytest.mark.django_db
@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example/",
        "//evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "http:evil.example",
        "https:///evil.example",
        " //evil.example",
        "javascript:alert(1)",
    ],
)
def test_next_cannot_redirect_off_the_site(clerk, next_url):
    client = Client()

    response = client.post(
        LOGIN, {"username": "clerk", "password": "pw", "next": next_url}, secure=True
    )

    assert response.status_code == 302
    assert response["Location"] == "/"


@pytest.mark.django_db
def test_next_on_the_site_is_followed(clerk):
    response = Client().post(
        LOGIN, {"username": "clerk", "password": "pw", "next": "/billing/invoices/"}
    )

    assert response["Location"] == "/billing/invoices/"


@pytest.mark.django_db
def test_next_in_the_query_string_is_escaped_in_the_form():
    response = Client().get(LOGIN, {"next": '/"><script>alert(1)</script>'})

    body = response.content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;" in body
