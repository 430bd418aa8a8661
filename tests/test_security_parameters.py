"""Hostile query parameters and path parts: never a 500, never unbounded work."""

import datetime

import pytest

from billruns import schedules
from billruns.models import Schedule
from tests.test_schedules_views import a_schedule
from tests.view_data import document_row, run_row

pytestmark = pytest.mark.django_db


@pytest.fixture
def pages(clerk):
    run = run_row(user=clerk, failures=3, documents=3)
    document = run.documents.first()
    a_schedule(clerk)
    return {
        "bill runs": "/billing/bill-runs/",
        "run invoices": f"/billing/bill-runs/{run.number}/",
        "run failures": f"/billing/bill-runs/{run.number}/?tab=failures",
        "invoices": "/billing/invoices/",
        "accounts": "/billing/accounts/",
        "schedules": "/billing/schedules/",
        "document": f"/billing/invoices/{document.number}/",
    }


def with_query(url, query):
    return f"{url}{'&' if '?' in url else '?'}{query}"


@pytest.mark.parametrize(
    "query",
    [
        "per_page=-1",
        "per_page=0",
        "per_page=abc",
        "page=-5",
        "page=0",
        "page=999999999999999999999999999999",
        "page=9223372036854775807",
        "page=abc",
        "page=3&per_page=1",
    ],
)
def test_odd_paging_parameters_show_a_page(client, viewer, pages, query):
    client.force_login(viewer)
    for name, url in pages.items():
        response = client.get(with_query(url, query))
        assert response.status_code == 200, (name, query)


def test_a_page_holds_at_most_a_hundred_rows_whatever_per_page_asks(client, viewer):
    for _ in range(120):
        document_row()
    client.force_login(viewer)

    html = client.get("/billing/invoices/?per_page=1000000").content.decode()

    assert html.count('data-testid="document-row"') == 100


def test_an_export_larger_than_the_limit_is_refused_with_a_message(client, viewer, settings):
    settings.EXPORT_MAX_ROWS = 2
    for _ in range(3):
        document_row()
    client.force_login(viewer)

    response = client.get("/billing/invoices/?status=Draft&_export=csv")
    page = client.get(response["Location"]).content.decode()

    assert response.status_code == 302
    assert response["Location"] == "/billing/invoices/?status=Draft"
    assert "This export would hold 3 rows; an export holds at most 2." in page
    settings.EXPORT_MAX_ROWS = 3
    assert client.get("/billing/invoices/?_export=csv")["Content-Type"].startswith("text/csv")


@pytest.mark.parametrize(
    "path",
    [
        "/billing/bill-runs/%00/",
        "/billing/bill-runs/BR%0A1/post/",
        "/billing/invoices/%00/pdf/",
        "/billing/invoices/INV%7F/",
        "/billing/accounts/A%00/",
    ],
)
def test_a_control_character_in_a_number_is_not_found(client, viewer, path):
    client.force_login(viewer)
    assert client.get(path).status_code == 404


@pytest.mark.parametrize("url", ["/billing/invoices/", "/billing/accounts/", "/admin/"])
def test_a_very_long_query_value_is_a_clear_400(client, superuser, url):
    client.force_login(superuser)
    response = client.get(url, {"q": "x" * 50_000})
    assert response.status_code == 400
    assert "The value of “q” is longer than 1,000 characters." in response.content.decode()
    assert client.get(url, {"q": "x" * 1000}).status_code == 200


@pytest.mark.parametrize(
    "occurrence",
    ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+14:00", "2100-01-01T06:00:00+00:00"],
)
def test_canceling_a_run_at_the_edge_of_time_is_a_message(client, clerk, occurrence):
    schedule = a_schedule(clerk, repeats="daily")
    client.force_login(clerk)

    response = client.post(
        f"/billing/schedules/{schedule.pk}/cancel/",
        {"scope": "occurrence", "occurrence": occurrence},
        follow=True,
    )

    assert response.status_code == 200
    schedule.refresh_from_db()
    assert schedule.skipped_occurrences == []


@pytest.mark.parametrize(
    "fields",
    [
        {"repeats": "daily", "start_date": datetime.date(9999, 12, 30)},
        {"repeats": "monthly", "start_date": datetime.date(9999, 12, 31)},
        {"repeats": "daily", "start_date": datetime.date(1, 1, 1)},
        {"end_date": datetime.date(9999, 12, 31)},
    ],
)
def test_dates_at_the_edge_of_the_calendar_are_refused(clerk, fields):
    with pytest.raises(schedules.InvalidSchedule) as refused:
        a_schedule(clerk, name="Edge", **fields)
    assert "must be between 2000-01-01 and 2099-12-31" in str(refused.value.errors)
    assert not Schedule.objects.filter(name="Edge").exists()
