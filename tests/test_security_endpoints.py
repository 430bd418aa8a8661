"""Every URL of the site, enumerated from the URL configuration (so a view
added later is covered without listing it here): a POST without the CSRF
token is refused, and a POST from a viewer, a user without a role or an
anonymous visitor changes nothing."""

import pytest
from django.test import Client
from django.urls import URLResolver, get_resolver, reverse

from billruns.models import RunStatus
from tests.test_schedules_views import a_schedule
from tests.view_data import document_row, run_row

pytestmark = pytest.mark.django_db

# Views any visitor may POST to, and why.
OPEN_TO_ALL = {
    "login": "signing in is for those not signed in",
    "logout": "signing out needs no permission",
    "admin:login": "the admin's sign-in",
    "admin:logout": "the admin's sign-out",
}

# Views any signed-in user may POST to, for their own rows only, and why
# (an anonymous POST is still sent to sign-in).
OWN_ROWS_ONLY = {
    "notifications:mark_all_read": "marks the user's own notices read; no billing data",
}


def routes():
    """(name, URL pattern) of every named URL, namespaced as reverse wants."""

    def walk(patterns, namespace):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = namespace
                if pattern.namespace:
                    inner = f"{namespace}:{pattern.namespace}" if namespace else pattern.namespace
                yield from walk(pattern.url_patterns, inner)
            elif pattern.name:
                yield (f"{namespace}:{pattern.name}" if namespace else pattern.name), pattern

    # The HTTP API (``api:``) is left to tests/api: it takes no session and no
    # cookie, only a key in the Authorization header, so a CSRF token means
    # nothing to it; the test below checks a signed-in browser gets nowhere.
    return [
        route for route in walk(get_resolver().url_patterns, "") if not route[0].startswith("api:")
    ]


def test_the_api_ignores_a_signed_in_session(superuser):
    client = Client(enforce_csrf_checks=True)
    client.force_login(superuser)

    for method, url in [("get", "/api/v1/bill-runs/"), ("post", "/api/v1/bill-runs/")]:
        response = getattr(client, method)(url, content_type="application/json", data={})

        assert response.status_code == 401, (method, url)
        assert response.json()["error"]["code"] == "unauthenticated"


@pytest.fixture
def objects(clerk):
    run = run_row(status=RunStatus.COMPLETED, documents=1, failures=1, user=clerk)
    return {
        "billruns": run.number,
        "invoices": document_row().number,
        "customers": run.failures.get().account.number,
        "schedule": a_schedule(clerk).pk,
    }


def url_of(name, pattern, objects):
    """A URL for the route, with real objects where the route names one."""
    namespace = name.split(":")[0]
    values = {
        "number": objects.get(namespace, "X1"),
        "pk": objects["schedule"] if namespace == "billruns" else 1,
        "object_id": "1",
        "id": "1",
        "content_type_id": "1",
        "app_label": "customers",
        "url": "x",
    }
    kwargs = {param: values[param] for param in pattern.pattern.regex.groupindex}
    return reverse(name, kwargs=kwargs)


def site_routes():
    return [(name, pattern) for name, pattern in routes() if not name.startswith("admin:")]


def test_the_enumeration_finds_the_pages_and_actions():
    names = {name for name, _ in routes()}

    assert {"billruns:post", "billruns:new", "invoices:payment_create", "login"} <= names
    assert "admin:customers_account_change" in names


def test_every_url_refuses_a_post_without_the_csrf_token(superuser, objects):
    client = Client(enforce_csrf_checks=True)
    client.force_login(superuser)
    unprotected = []

    for name, pattern in routes():
        url = url_of(name, pattern, objects)
        response = client.post(url, {"anything": "1"})
        if response.status_code != 403 or b"CSRF" not in response.content:
            unprotected.append((name, url, response.status_code))

    assert unprotected == []


def test_the_sign_in_form_demands_the_csrf_token_too(clerk):
    client = Client(enforce_csrf_checks=True)

    response = client.post("/accounts/login/", {"username": "clerk", "password": "pw"})

    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


def posted_by(user, objects, skip=()):
    """Status of a POST (CSRF token not checked) to every site URL by ``user``."""
    client = Client()
    if user is not None:
        client.force_login(user)
    return {
        name: client.post(url_of(name, pattern, objects), {"anything": "1"})
        for name, pattern in site_routes()
        if name not in OPEN_TO_ALL and name not in skip
    }


def snapshot():
    from billruns.models import BillRun, Schedule
    from customers.models import Account
    from invoices.models import Document, Payment

    return (
        list(Account.objects.order_by("id").values_list("bill_to_email", flat=True)),
        list(BillRun.objects.order_by("id").values_list("status", flat=True)),
        list(Document.objects.order_by("id").values_list("status", "balance")),
        Payment.objects.count(),
        list(Schedule.objects.order_by("id").values_list("status", "name")),
    )


def test_a_viewer_can_post_to_nothing(viewer, objects):
    before = snapshot()

    responses = posted_by(viewer, objects, skip=OWN_ROWS_ONLY)

    # 403: an action the viewer may not take; 405: a page that takes no POST
    assert {n: r.status_code for n, r in responses.items() if r.status_code not in (403, 405)} == {}
    assert snapshot() == before
    # the actions themselves are refused for want of permission, not of method
    assert all(responses[n].status_code == 403 for n in ACTIONS), responses


def test_a_user_without_a_role_can_post_to_nothing(django_user_model, objects):
    nobody = django_user_model.objects.create_user("nobody", password="pw")
    before = snapshot()

    responses = posted_by(nobody, objects, skip=OWN_ROWS_ONLY)

    assert {n: r.status_code for n, r in responses.items() if r.status_code not in (403, 405)} == {}
    assert snapshot() == before


def test_an_anonymous_post_is_sent_to_sign_in(objects):
    before = snapshot()

    responses = posted_by(None, objects)

    wrong = {
        name: (response.status_code, response.get("Location"))
        for name, response in responses.items()
        if response.status_code != 405
        and not (
            response.status_code == 302 and response["Location"].startswith("/accounts/login/")
        )
    }
    assert wrong == {}
    assert snapshot() == before


# The actions: POST only (a GET is refused with 405), or a page whose POST
# acts (usage:list and customers:account_import upload a file).
ACTIONS = [
    "billruns:new",
    "billruns:post",
    "billruns:cancel",
    "billruns:retry",
    "billruns:email",
    "billruns:delete",
    "billruns:schedule_new",
    "billruns:schedule_edit",
    "billruns:schedule_pause",
    "billruns:schedule_resume",
    "billruns:schedule_cancel",
    "billruns:schedule_preview",
    "billruns:create_from_preview",
    "invoices:post",
    "invoices:payment_create",
    "invoices:credit_application_create",
    "customers:account_bill_to_contact",
    "subscription_changes:add_charge",
    "subscription_changes:change_price",
    "subscription_changes:remove_charge",
    "subscription_changes:cancel",
    "usage:list",
    "customers:account_import",
]


def test_every_view_that_takes_a_post_is_known_to_need_a_permission(clerk, objects):
    """A view that takes a POST from a signed-in clerk (anything but 405) and
    is not in ACTIONS is new: add it there, so that the viewer test above
    proves its permission check. Pages that only show refuse a POST (405)."""
    client = Client()
    client.force_login(clerk)
    takes_post = {
        name
        for name, pattern in site_routes()
        if name not in OPEN_TO_ALL
        and client.post(url_of(name, pattern, objects)).status_code != 405
    }

    assert takes_post - set(ACTIONS) - set(OWN_ROWS_ONLY) == set()
