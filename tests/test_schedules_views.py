"""The Schedules pages: list, create, edit, detail with preview, pause, resume, cancel."""

import datetime

import pytest

from billruns import schedules
from billruns.models import BillRun, Schedule

pytestmark = pytest.mark.django_db

LIST = "/billing/schedules/"
NEW = "/billing/schedules/new/"


def page(schedule, suffix=""):
    return f"/billing/schedules/{schedule.pk}/{suffix}"


def form_data(**fields):
    data = {
        "name": "Month end",
        "repeats": "monthly",
        "month_day": "31",
        "run_time": "06:30",
        "time_zone": "Europe/Berlin",
        "start_date": "2026-01-01",
        "end_date": "",
        "target_date_offset_days": "0",
        "invoice_date_offset_days": "1",
        "bill_cycle_day": "run_day",
        "batches": ["2", "1"],
    }
    data.update(fields)
    return {key: value for key, value in data.items() if value is not None}


def a_schedule(owner, **fields):
    values = {
        "name": "Monthly batch 1",
        "repeats": "monthly",
        "day_of_month": 1,
        "run_time": datetime.time(6, 0),
        "time_zone": "America/New_York",
        "start_date": datetime.date(2026, 1, 1),
    } | fields
    return schedules.schedule_create(owner=owner, **values)


# --- list ------------------------------------------------------------------------


def test_the_list_shows_name_owner_repeats_next_run_status_and_last_run(client, viewer, clerk):
    schedule = a_schedule(clerk)
    Schedule.objects.filter(pk=schedule.pk).update(
        next_run_at=datetime.datetime(2026, 3, 1, 11, tzinfo=datetime.UTC)
    )
    (run,) = schedules.schedules_fire_due(
        now=datetime.datetime(2026, 3, 1, 11, 1, tzinfo=datetime.UTC)
    )
    client.force_login(viewer)

    html = client.get(LIST).content.decode()

    row = html.split('data-testid="schedule-row"')[1].split("</tr>")[0]
    assert f'<a href="/billing/schedules/{schedule.pk}/">Monthly batch 1</a>' in row
    assert "clerk" in row
    assert "Monthly on day 1 at 06:00 America/New_York" in row
    assert "2026-04-01 06:00 America/New_York" in row
    assert "Active" in row
    assert f'href="/billing/bill-runs/{run.number}/"' in row
    assert "New schedule" not in html


def test_clerks_see_the_new_schedule_button(client, clerk):
    client.force_login(clerk)

    assert "New schedule" in client.get(LIST).content.decode()


# --- create ----------------------------------------------------------------------


def test_a_clerk_creates_a_schedule_and_owns_it(client, clerk):
    client.force_login(clerk)

    response = client.post(NEW, form_data())

    schedule = Schedule.objects.get(name="Month end")
    assert response.status_code == 302
    assert response.url == page(schedule)
    assert schedule.owner == clerk
    assert schedule.day_of_month == 31 and not schedule.last_day_of_month
    assert schedule.time_zone == "Europe/Berlin"
    assert schedule.run_time == datetime.time(6, 30)
    assert schedule.batches == [1, 2]
    assert schedule.bill_cycle_day == "run_day"
    assert schedule.invoice_date_offset_days == 1
    assert schedule.next_run_at is not None


def test_the_form_has_a_time_zone_select_and_weekday_checkboxes(client, clerk):
    client.force_login(clerk)

    html = client.get(NEW).content.decode()

    assert '<select name="time_zone"' in html
    assert '<option value="Pacific/Auckland">' in html
    assert html.count('type="checkbox" name="weekdays"') == 7
    assert "Last day of the month" in html


def test_a_clerk_ticks_the_charge_types_its_runs_exclude(client, clerk):
    client.force_login(clerk)

    form = client.get(NEW).content.decode()
    client.post(NEW, form_data(exclude_charge_types=["usage", "one_time"]))

    assert form.count('type="checkbox" name="exclude_charge_types"') == 3
    assert "Charge types to exclude" in form
    assert Schedule.objects.get(name="Month end").exclude_charge_types == ["one_time", "usage"]


def test_an_unknown_charge_type_is_a_field_error(client, clerk):
    client.force_login(clerk)

    response = client.post(NEW, form_data(exclude_charge_types=["tax"]))

    assert response.status_code == 400
    assert "tax is not one of the available choices" in str(
        response.context["form"].errors["exclude_charge_types"]
    )
    assert not Schedule.objects.exists()


def test_monthly_on_the_last_day(client, clerk):
    client.force_login(clerk)

    client.post(NEW, form_data(month_day="last"))

    schedule = Schedule.objects.get(name="Month end")
    assert schedule.last_day_of_month and schedule.day_of_month is None


def test_weekly_on_chosen_days(client, clerk):
    client.force_login(clerk)

    client.post(NEW, form_data(repeats="weekly", weekdays=["0", "4"]))

    assert Schedule.objects.get(name="Month end").weekdays == [0, 4]


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (
            {"start_date": "2026-05-01", "end_date": "2026-04-30"},
            "end_date",
            "The end date cannot be before the start date.",
        ),
        ({"repeats": "weekly"}, "weekdays", "Choose at least one day of the week."),
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone", "Choose an IANA time zone"),
        ({"month_day": "0"}, "month_day", "Choose a day from 1 to 31, or the last day."),
        ({"month_day": "32"}, "month_day", "Choose a day from 1 to 31, or the last day."),
        ({"run_time": "25:00"}, "run_time", "Enter a valid time."),
        ({"name": ""}, "name", "This field is required."),
        (
            {"start_date": "9999-12-31"},
            "start_date",
            "The date must be between 2000-01-01 and 2099-12-31, not 9999-12-31.",
        ),
        (
            {"end_date": "2100-01-01"},
            "end_date",
            "The date must be between 2000-01-01 and 2099-12-31, not 2100-01-01.",
        ),
        (
            {"end_date": "2099-12-31", "target_date_offset_days": "3"},
            "target_date_offset_days",
            "With a target date offset of 3 days, a run on the end date 2099-12-31 would "
            "have the target date 2100-01-03: dates must be between 2000-01-01 and 2099-12-31.",
        ),
    ],
)
def test_bad_input_shows_the_error_at_its_field(client, clerk, fields, field, message):
    client.force_login(clerk)

    response = client.post(NEW, form_data(**fields))

    assert response.status_code == 400
    assert message in response.context["form"].errors[field][0]
    assert message in response.content.decode()
    assert not Schedule.objects.exists()


def test_an_invoice_date_before_the_target_date_is_allowed(client, clerk):
    # INTERFACES.md, "Numbers and dates": as in the ad hoc form and the command.
    client.force_login(clerk)

    response = client.post(
        NEW, form_data(target_date_offset_days="0", invoice_date_offset_days="-5")
    )

    assert response.status_code == 302
    schedule = Schedule.objects.get(name="Month end")
    assert (schedule.target_date_offset_days, schedule.invoice_date_offset_days) == (0, -5)


def test_the_date_pickers_offer_the_accepted_range(client, clerk):
    client.force_login(clerk)

    html = client.get(NEW).content.decode()

    start = html.split('name="start_date"')[1].split(">")[0]
    assert 'min="2000-01-01"' in start and 'max="2099-12-31"' in start


def test_a_duplicate_name_is_a_field_error(client, clerk):
    a_schedule(clerk, name="Month end")
    client.force_login(clerk)

    response = client.post(NEW, form_data())

    assert response.status_code == 400
    assert "Another schedule is named" in response.context["form"].errors["name"][0]


def test_a_schedule_that_would_never_run_is_refused(client, clerk):
    client.force_login(clerk)

    response = client.post(NEW, form_data(repeats="once", start_date="2020-01-01"))

    assert response.status_code == 400
    assert "no run after now" in response.content.decode()


def test_viewers_cannot_create_schedules(client, viewer):
    client.force_login(viewer)

    assert client.get(NEW).status_code == 403
    assert client.post(NEW, form_data()).status_code == 403
    assert not Schedule.objects.exists()


# --- edit ------------------------------------------------------------------------


def test_a_clerk_edits_a_schedule_and_the_owner_stays(client, clerk, django_user_model):
    schedule = a_schedule(clerk)
    other = django_user_model.objects.create_user("second", password="pw")
    other.groups.set(clerk.groups.all())
    client.force_login(other)

    form = client.get(page(schedule, "edit/")).content.decode()
    response = client.post(page(schedule, "edit/"), form_data(name="Renamed", owner=other.pk))

    assert 'value="Monthly batch 1"' in form
    assert response.status_code == 302
    schedule.refresh_from_db()
    assert schedule.name == "Renamed"
    assert schedule.owner == clerk


def test_the_edit_form_keeps_and_changes_the_excluded_charge_types(client, clerk):
    schedule = a_schedule(clerk, exclude_charge_types=["usage"])
    client.force_login(clerk)

    form = client.get(page(schedule, "edit/")).content.decode()
    client.post(page(schedule, "edit/"), form_data(exclude_charge_types=["recurring"]))

    assert 'name="exclude_charge_types" value="usage" id="id_exclude_charge_types_2" checked' in (
        form
    )
    schedule.refresh_from_db()
    assert schedule.exclude_charge_types == ["recurring"]


def test_the_page_shows_the_excluded_charge_types(client, viewer, clerk):
    excluding = a_schedule(clerk, exclude_charge_types=["usage", "one_time"])
    billing_all = a_schedule(clerk, name="Everything")
    client.force_login(viewer)

    excluding_page = client.get(page(excluding)).content.decode()
    all_page = client.get(page(billing_all)).content.decode()

    assert (
        '<dt>Excluded charge types</dt><dd data-testid="schedule-excluded-charge-types">'
        "One-time, Usage</dd>"
    ) in excluding_page
    assert 'data-testid="schedule-excluded-charge-types">None</dd>' in all_page


def test_viewers_cannot_edit(client, viewer, clerk):
    schedule = a_schedule(clerk)
    client.force_login(viewer)

    assert client.post(page(schedule, "edit/"), form_data(name="x")).status_code == 403
    assert client.get(page(schedule, "edit/")).status_code == 403


# --- detail ----------------------------------------------------------------------


def test_the_page_previews_the_next_fifteen_runs_in_the_schedules_time_zone(client, viewer, clerk):
    schedule = a_schedule(clerk, day_of_month=31, time_zone="Asia/Tokyo")
    client.force_login(viewer)

    html = client.get(page(schedule)).content.decode()

    preview = html.split('data-testid="schedule-preview"')[1].split("</ol>")[0]
    expected = [
        at.astimezone(datetime.timezone(datetime.timedelta(hours=9))).strftime("%Y-%m-%d 06:00")
        for at in schedules.next_occurrences(
            schedule, after=schedule.next_run_at - datetime.timedelta(seconds=1)
        )
    ]
    assert preview.count("<li>") == 15
    for text in expected:
        assert text in preview
    assert "Next 15 runs" in html


def test_viewers_see_no_action_buttons(client, viewer, clerk):
    schedule = a_schedule(clerk)
    client.force_login(viewer)

    html = client.get(page(schedule)).content.decode()

    for testid in ("edit-schedule", "pause-schedule", "cancel-schedule", "cancel-occurrence"):
        assert testid not in html


def test_clerks_see_confirmations_for_each_action(client, clerk):
    schedule = a_schedule(clerk)
    client.force_login(clerk)

    html = client.get(page(schedule)).content.decode()

    for dialog in ("pause", "cancel-occurrence", "cancel-all"):
        assert f'<dialog class="confirm-dialog" id="{dialog}"' in html
    occurrence = schedules.occurrence_key(schedule.next_run_at)
    assert f'name="occurrence" value="{occurrence}"' in html


# --- pause, resume, cancel ---------------------------------------------------------


def test_pause_and_resume(client, clerk):
    schedule = a_schedule(clerk)
    client.force_login(clerk)

    response = client.post(page(schedule, "pause/"))
    schedule.refresh_from_db()
    assert response.status_code == 302 and schedule.status == "paused"
    assert "Resume" in client.get(page(schedule)).content.decode()

    client.post(page(schedule, "resume/"))
    schedule.refresh_from_db()
    assert schedule.status == "active"


def test_a_refused_action_is_a_message_and_changes_nothing(client, clerk):
    schedule = a_schedule(clerk)
    client.force_login(clerk)

    response = client.post(page(schedule, "resume/"), follow=True)

    assert "only a paused schedule can be resumed" in response.content.decode()
    schedule.refresh_from_db()
    assert schedule.status == "active"


def test_cancel_this_occurrence(client, clerk):
    schedule = a_schedule(clerk)
    first = schedule.next_run_at
    client.force_login(clerk)

    response = client.post(
        page(schedule, "cancel/"),
        {"scope": "occurrence", "occurrence": schedules.occurrence_key(first)},
        follow=True,
    )

    schedule.refresh_from_db()
    assert schedule.status == "active"
    assert schedule.next_run_at > first
    assert schedule.skipped_occurrences == [schedules.occurrence_key(first)]
    assert "is canceled" in response.content.decode()
    assert 'data-testid="schedule-skipped"' in response.content.decode()


def test_cancel_all(client, clerk):
    schedule = a_schedule(clerk)
    client.force_login(clerk)

    client.post(page(schedule, "cancel/"), {"scope": "all"})

    schedule.refresh_from_db()
    assert schedule.status == "canceled" and schedule.next_run_at is None
    html = client.get(page(schedule)).content.decode()
    assert "cancel-schedule" not in html and "edit-schedule" not in html


def test_cancel_without_a_scope_changes_nothing(client, clerk):
    schedule = a_schedule(clerk)
    client.force_login(clerk)

    response = client.post(page(schedule, "cancel/"), {"occurrence": "tomorrow"}, follow=True)

    assert "Choose the run to cancel" in response.content.decode()
    schedule.refresh_from_db()
    assert schedule.status == "active" and schedule.skipped_occurrences == []


@pytest.mark.parametrize("action", ["pause/", "resume/", "cancel/"])
def test_viewers_get_403_on_actions(client, viewer, clerk, action):
    schedule = a_schedule(clerk)
    client.force_login(viewer)

    assert client.post(page(schedule, action), {"scope": "all"}).status_code == 403
    schedule.refresh_from_db()
    assert schedule.status == "active"


@pytest.mark.parametrize("action", ["pause/", "resume/", "cancel/"])
def test_actions_refuse_get(client, clerk, action):
    schedule = a_schedule(clerk)
    client.force_login(clerk)

    assert client.get(page(schedule, action)).status_code == 405


def test_a_fired_run_belongs_to_the_owner_and_links_back(client, viewer, clerk):
    schedule = a_schedule(clerk)
    (run,) = schedules.schedules_fire_due(now=schedule.next_run_at)
    client.force_login(viewer)

    html = client.get(page(schedule)).content.decode()

    assert run.created_by == clerk and run.schedule == schedule
    assert f'href="/billing/bill-runs/{run.number}/"' in html
    assert BillRun.objects.filter(schedule=schedule).count() == 1


def test_the_page_shows_the_history_newest_first(client, viewer, clerk, django_user_model):
    schedule = a_schedule(clerk)
    other = django_user_model.objects.create_user("second", password="pw")
    other.groups.set(clerk.groups.all())
    client.force_login(other)
    client.post(page(schedule, "edit/"), form_data(name="Renamed <b>"))
    (run,) = schedules.schedules_fire_due(now=schedule.next_run_at)
    client.force_login(viewer)

    html = client.get(page(schedule)).content.decode()

    history = html[html.index('data-testid="schedule-history"') :]
    fired, changed, created = (
        history.index("Run made"),
        history.index("Changed"),
        history.index("Created"),
    )
    assert fired < changed < created
    assert f'href="/billing/bill-runs/{run.number}/"' in history
    assert "Created</strong> by clerk" in history
    assert "Changed</strong> by second" in history
    assert "name: Monthly batch 1 -&gt; Renamed &lt;b&gt;" in history


def test_the_list_exports_as_csv_and_xlsx(client, viewer, clerk):
    import csv
    import io

    import openpyxl

    schedule = a_schedule(clerk)
    (run,) = schedules.schedules_fire_due(now=schedule.next_run_at)
    a_schedule(clerk, name="Paused one")
    schedules.schedule_pause(schedule=Schedule.objects.get(name="Paused one"), user=clerk)
    client.force_login(viewer)

    page = client.get(LIST).content.decode()
    response = client.get(LIST, {"_export": "csv"})
    workbook = client.get(LIST, {"_export": "xlsx"})

    assert "_export=csv" in page and "_export=xlsx" in page
    assert response["Content-Type"].startswith("text/csv")
    assert "schedules" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["Name", "Owner", "Repeats", "Next run", "Status", "Last run"]
    by_name = {row[0]: row for row in rows[1:]}
    assert by_name["Monthly batch 1"][1] == "clerk"
    assert by_name["Monthly batch 1"][4:] == ["Active", run.number]
    assert by_name["Paused one"][3:] == ["—", "Paused", ""]
    assert "<" not in response.content.decode()
    sheet = openpyxl.load_workbook(io.BytesIO(workbook.content)).active
    assert sheet.cell(row=1, column=1).value == "Name"


@pytest.mark.parametrize("suffix", ["", "edit/"])
def test_the_schedule_pages_are_under_schedules_in_the_menu(client, clerk, suffix):
    schedule = a_schedule(clerk)
    client.force_login(clerk)
    for url in (NEW, page(schedule, suffix)):
        html = client.get(url).content.decode()
        assert 'href="/billing/schedules/" aria-current="page"' in html
        assert 'href="/billing/bill-runs/" aria-current="page"' not in html
