import pytest

from billruns.models import Schedule

pytestmark = pytest.mark.django_db


def test_sign_in_page_renders(client):
    html = client.get("/accounts/login/").content.decode()
    assert 'name="username"' in html and 'name="password"' in html


def test_signing_in_goes_to_next(client, clerk):
    response = client.post(
        "/accounts/login/?next=/billing/invoices/",
        {"username": "clerk", "password": "pw", "next": "/billing/invoices/"},
    )
    assert response.url == "/billing/invoices/"


def test_signing_in_never_redirects_off_site(client, clerk):
    response = client.post(
        "/accounts/login/", {"username": "clerk", "password": "pw", "next": "https://evil.example/"}
    )
    assert response.status_code == 302
    assert "evil.example" not in response.url


def test_wrong_password_shows_an_error(client, clerk):
    response = client.post("/accounts/login/", {"username": "clerk", "password": "nope"})
    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()


def test_sign_out_is_a_post(client, clerk):
    client.force_login(clerk)
    html = client.get("/billing/bill-runs/").content.decode()
    assert 'action="/accounts/logout/"' in html
    response = client.post("/accounts/logout/", follow=True)
    assert response.redirect_chain[0][1] == 302
    assert "You are signed out." in response.content.decode()
    assert client.get("/billing/bill-runs/").status_code == 302


def test_header_shows_navigation_and_the_user(client, viewer):
    client.force_login(viewer)
    html = client.get("/billing/invoices/").content.decode()
    for label in ("Bill Runs", "Schedules", "Invoices", "Accounts", "viewer"):
        assert label in html
    assert '<a href="/billing/invoices/" aria-current="page">' in html


def test_schedules_page_has_an_empty_state(client, viewer):
    client.force_login(viewer)
    html = client.get("/billing/schedules/").content.decode()
    assert "No schedules yet" in html


def test_schedules_page_lists_schedules(client, viewer, clerk):
    Schedule.objects.create(name="Monthly batch 1", owner=clerk)
    client.force_login(viewer)
    html = client.get("/billing/schedules/").content.decode()
    assert "Monthly batch 1" in html and "clerk" in html


def test_static_files_are_local(client, viewer):
    client.force_login(viewer)
    html = client.get("/billing/bill-runs/").content.decode()
    assert "/static/vendor/htmx.min.js" in html
    assert "/static/css/app.css" in html
    assert "https://" not in html.split("<body")[0]
