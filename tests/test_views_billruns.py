import csv
import datetime
import io
import uuid

import openpyxl
import pytest
from django.urls import reverse
from django.utils import timezone

from billruns.models import BillRun, BillRunFailure, RunStatus
from invoices.models import DeliveryStatus, Document, DocumentDelivery, DocumentStatus
from tests.view_data import TARGET, billed_account, executed_run, run_row

pytestmark = pytest.mark.django_db

LIST = "/billing/bill-runs/"
NEW = "/billing/bill-runs/new/"


def detail(run, suffix=""):
    return f"/billing/bill-runs/{run.number}/{suffix}"


def rows_of_csv(response):
    return list(csv.reader(io.StringIO(response.content.decode())))


# --- the list ----------------------------------------------------------------


def test_anonymous_users_are_sent_to_sign_in(client):
    response = client.get(LIST)
    assert response.status_code == 302
    assert response.url.startswith("/accounts/login/?next=")


def test_the_root_redirects_to_the_bill_run_list(client, viewer):
    client.force_login(viewer)
    response = client.get("/")
    assert response.status_code == 302
    assert response.url == LIST


def test_users_without_a_billing_role_are_refused(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("nobody", password="pw"))
    assert client.get(LIST).status_code == 403


def test_list_shows_the_alert_icon_only_for_runs_with_failures(client, viewer):
    failed = run_row(failures=1, documents=1)
    clean = run_row(documents=2)
    client.force_login(viewer)

    html = client.get(LIST).content.decode()

    rows = html.split('data-testid="billrun-row"')[1:]
    by_number = {row.split('data-number="')[1].split('"')[0]: row for row in rows}
    assert 'data-testid="billrun-alert"' in by_number[failed.number]
    assert 'aria-label="Completed with errors"' in by_number[failed.number]
    assert 'data-testid="billrun-alert"' not in by_number[clean.number].split("</tr>")[0]


def test_list_rows_expand_to_the_runs_selection_and_counters(client, viewer):
    original = run_row(failures=8, batches=[2, 3], bill_cycle_days=[15])
    retry = run_row(retry_of=original, accounts_selected=8)
    client.force_login(viewer)

    html = client.get(LIST).content.decode()

    assert html.count('data-testid="billrun-expand"') == 2
    assert f'aria-controls="run-details-{retry.pk}"' in html
    assert "Batch2, Batch3; bill cycle day 15" in html
    link = reverse("billruns:detail", args=[original.number])
    assert (
        f'Retry of <a href="{link}" data-testid="retry-of">{original.number}</a>: 8 failed accounts'
    ) in html


def test_list_rows_expand_to_the_excluded_charge_types(client, viewer):
    excluding = run_row(exclude_charge_types=["one_time", "usage"])
    billing_all = run_row()
    client.force_login(viewer)

    html = client.get(LIST).content.decode()

    details = {
        run.number: html.split(f'id="run-details-{run.pk}"', 1)[1].split("</tr>", 1)[0]
        for run in (excluding, billing_all)
    }
    assert "<dt>Excluded charge types</dt><dd>One-time, Usage</dd>" in details[excluding.number]
    assert "<dt>Excluded charge types</dt><dd>None</dd>" in details[billing_all.number]


def test_the_run_page_shows_the_excluded_charge_types(client, viewer):
    excluding = run_row(exclude_charge_types=["recurring"])
    billing_all = run_row()
    client.force_login(viewer)

    excluding_page = client.get(detail(excluding)).content.decode()
    all_page = client.get(detail(billing_all)).content.decode()

    assert (
        '<dt>Excluded charge types</dt><dd data-testid="run-excluded-charge-types">Recurring</dd>'
    ) in excluding_page
    assert 'data-testid="run-excluded-charge-types">None</dd>' in all_page


def test_a_retry_runs_page_says_what_it_retries_not_all_batches(client, viewer):
    original = run_row(failures=8)
    retry = run_row(retry_of=original, accounts_selected=8)
    client.force_login(viewer)

    html = client.get(detail(retry)).content.decode()

    selection = html.split('data-testid="run-selection">', 1)[1].split("</dd>", 1)[0]
    assert "All batches" not in selection
    assert f">{original.number}</a>: 8 failed accounts" in selection


def test_viewers_see_no_new_run_button_and_clerks_do(client, viewer, clerk):
    client.force_login(viewer)
    assert NEW not in client.get(LIST).content.decode()
    client.force_login(clerk)
    assert NEW in client.get(LIST).content.decode()


def test_list_filters_by_status_and_errors(client, viewer):
    failed = run_row(failures=1)
    clean = run_row()
    canceled = run_row(status=RunStatus.CANCELED)
    client.force_login(viewer)

    html = client.get(LIST, {"has_errors": "yes"}).content.decode()
    assert failed.number in html and clean.number not in html

    html = client.get(LIST, {"status": "Canceled"}).content.decode()
    assert canceled.number in html and clean.number not in html


def test_list_filters_by_creator_offering_only_those_who_created_a_run(
    client, viewer, clerk, django_user_model
):
    mine = run_row(user=clerk)
    theirs = run_row(user=viewer)
    django_user_model.objects.create_user("never-ran-one")
    client.force_login(viewer)

    response = client.get(LIST, {"created_by": clerk.pk})
    html = response.content.decode()
    assert mine.number in html and theirs.number not in html
    options = [label for _, label in response.context["filter"].form.fields["created_by"].choices]
    assert options == ["Anyone", *sorted([clerk.username, viewer.username])]
    # An id that created no run is refused as a choice, not a server error.
    outsider = django_user_model.objects.get(username="never-ran-one")
    response = client.get(LIST, {"created_by": outsider.pk})
    assert response.status_code == 200
    assert "errorlist" in response.content.decode()


def test_a_bad_filter_value_shows_the_error_and_no_server_error(client, viewer):
    client.force_login(viewer)
    response = client.get(LIST, {"status": "Nonsense", "target_from": "not a date"})
    assert response.status_code == 200
    assert "errorlist" in response.content.decode()


def test_csv_export_keeps_the_filter(client, viewer):
    failed = run_row(failures=2, documents=1)
    run_row(documents=1)
    client.force_login(viewer)

    response = client.get(LIST, {"has_errors": "yes", "_export": "csv"})

    assert response["Content-Type"].startswith("text/csv")
    rows = rows_of_csv(response)
    assert rows[0][:2] == ["Number", "Status"]
    assert [row[0] for row in rows[1:]] == [failed.number]
    assert rows[1][1] == "Completed (with errors)"
    assert "USD 100.00" in rows[1]


def test_xlsx_export_is_a_workbook(client, viewer):
    run = run_row(documents=1)
    client.force_login(viewer)

    response = client.get(LIST, {"_export": "xlsx"})

    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    assert sheet.cell(row=2, column=1).value == run.number


def test_list_queries_do_not_grow_with_rows(client, viewer, django_assert_max_num_queries):
    for _ in range(3):
        run_row(failures=1, documents=1)
    client.force_login(viewer)
    with django_assert_max_num_queries(12) as few:
        client.get(LIST)
    for _ in range(20):
        run_row(failures=1, documents=1)
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(LIST)


# --- the run's page --------------------------------------------------------------


def test_run_page_shows_banner_and_failures_tab_rows(client, viewer):
    run = executed_run(clean=2, without_contact=1)
    failure = run.failures.get()
    client.force_login(viewer)

    html = client.get(detail(run), {"tab": "failures"}).content.decode()

    assert "1 account failed to generate invoices and was not billed." in html
    assert 'data-testid="failures-tab"' in html
    assert html.count('data-testid="failure-row"') == 1
    assert failure.account.number in html
    assert "Bill-to contact is missing" in html
    assert reverse("customers:account_detail", args=[failure.account.number]) in html


def test_run_page_without_failures_has_no_banner(client, viewer):
    run = executed_run(clean=2)
    client.force_login(viewer)
    html = client.get(detail(run)).content.decode()
    assert "failed to generate invoices" not in html
    assert 'data-testid="billrun-alert"' not in html
    assert html.count('data-testid="document-row"') == 2


def test_run_page_tabs_export_as_csv(client, viewer):
    run = executed_run(clean=2, without_contact=1)
    client.force_login(viewer)

    invoices = rows_of_csv(client.get(detail(run), {"tab": "invoices", "_export": "csv"}))
    failures = rows_of_csv(client.get(detail(run), {"tab": "failures", "_export": "csv"}))

    assert len(invoices) == 3
    assert failures[0] == ["Account", "Account name", "Subscription", "Reason"]
    assert failures[1][3] == "Bill-to contact is missing"


def test_viewers_see_no_action_buttons(client, viewer):
    run = executed_run(clean=1, without_contact=1)
    client.force_login(viewer)
    html = client.get(detail(run)).content.decode()
    for testid in ("post-billrun", "cancel-billrun", "retry-billrun", "delete-billrun"):
        assert f'data-testid="{testid}"' not in html


def test_clerks_see_post_cancel_and_retry_on_a_completed_run(client, clerk):
    run = executed_run(clean=1, without_contact=1)
    client.force_login(clerk)
    html = client.get(detail(run)).content.decode()
    assert 'data-testid="post-billrun"' in html
    assert 'data-testid="cancel-billrun"' in html
    assert 'data-testid="retry-billrun"' in html
    assert f'action="{detail(run, "post/")}"' in html
    assert 'data-testid="delete-billrun"' not in html


def test_a_pending_run_shows_the_polled_progress_bar(client, viewer):
    run = run_row(status=RunStatus.PROCESSING, accounts_selected=10, accounts_processed=4)
    client.force_login(viewer)

    html = client.get(detail(run)).content.decode()
    assert 'data-testid="billrun-progress"' in html
    assert f'hx-get="{detail(run, "progress/")}"' in html

    partial = client.get(detail(run, "progress/"), HTTP_HX_REQUEST="true")
    assert partial.status_code == 200
    assert 'value="4"' in partial.content.decode()
    assert "<html" not in partial.content.decode()


def test_progress_asks_for_a_page_reload_once_the_run_has_ended(client, viewer):
    run = run_row(status=RunStatus.COMPLETED)
    client.force_login(viewer)
    response = client.get(detail(run, "progress/"), HTTP_HX_REQUEST="true")
    assert response["HX-Refresh"] == "true"
    assert 'data-testid="billrun-progress"' not in client.get(detail(run)).content.decode()


def test_unknown_run_is_404(client, viewer):
    client.force_login(viewer)
    assert client.get("/billing/bill-runs/BR-99999999/").status_code == 404


def test_run_page_queries_do_not_grow_with_rows(client, viewer, django_assert_max_num_queries):
    run = run_row(failures=2, documents=2)
    client.force_login(viewer)
    with django_assert_max_num_queries(20) as few:
        client.get(detail(run), {"tab": "failures"})
    # The invoices tab reads its page's items too (their expanded rows), in one query.
    with django_assert_max_num_queries(21) as few_documents:
        client.get(detail(run), {"tab": "invoices"})
    more = run_row(failures=20, documents=20)
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(detail(more), {"tab": "failures"})
    with django_assert_max_num_queries(len(few_documents.captured_queries)):
        client.get(detail(more), {"tab": "invoices"})


# --- new run -----------------------------------------------------------------


def new_run_data(**overrides):
    data = {
        "target_date": TARGET.isoformat(),
        "invoice_date": "",
        "mode": "batches",
        "bill_cycle_day": "all",
        "request_key": str(uuid.uuid4()),
    }
    data.update(overrides)
    return data


def test_new_run_form_needs_the_add_permission(client, viewer):
    client.force_login(viewer)
    assert client.get(NEW).status_code == 403
    assert client.post(NEW, new_run_data()).status_code == 403
    assert not BillRun.objects.exists()


def test_new_run_form_renders_with_a_request_key(client, clerk):
    client.force_login(clerk)
    html = client.get(NEW).content.decode()
    assert 'name="request_key"' in html and 'type="hidden"' in html


def test_creating_a_run_redirects_to_its_page(client, clerk, django_capture_on_commit_callbacks):
    billed_account(batch=2)
    client.force_login(clerk)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(NEW, new_run_data(batches=["2"], bill_cycle_day="1"))

    run = BillRun.objects.get()
    assert response.status_code == 302
    assert response.url == detail(run)
    assert run.batches == [2] and run.bill_cycle_days == [1]
    assert run.created_by == clerk


def test_the_new_run_form_offers_the_charge_types_to_exclude(client, clerk):
    client.force_login(clerk)

    html = client.get(NEW).content.decode()

    assert "Charge types to exclude" in html
    boxes = html.split('type="checkbox" name="exclude_charge_types"')[1:]
    assert [box.split('value="')[1].split('"')[0] for box in boxes] == [
        "one_time",
        "recurring",
        "usage",
    ]
    assert [box.split("> ", 1)[1].split("</label>")[0] for box in boxes] == [
        "One-time",
        "Recurring",
        "Usage",
    ]


def test_a_run_excludes_the_charge_types_ticked(client, clerk):
    client.force_login(clerk)

    response = client.post(NEW, new_run_data(exclude_charge_types=["usage", "recurring"]))

    run = BillRun.objects.get()
    assert response.status_code == 302
    assert run.exclude_charge_types == ["recurring", "usage"]


def test_an_unknown_charge_type_is_shown_at_its_field_and_creates_nothing(client, clerk):
    client.force_login(clerk)

    response = client.post(NEW, new_run_data(exclude_charge_types=["usage", "tax"]))

    assert response.status_code == 400
    assert "tax is not one of the available choices" in str(
        response.context["form"].errors["exclude_charge_types"]
    )
    assert not BillRun.objects.exists()


def test_a_double_submit_creates_one_run(client, clerk):
    client.force_login(clerk)
    data = new_run_data()
    first = client.post(NEW, data)
    second = client.post(NEW, data)
    assert BillRun.objects.count() == 1
    assert first.url == second.url


def test_a_run_for_one_account_and_some_subscriptions(client, clerk):
    account = billed_account()
    subscription = account.subscriptions.get()
    client.force_login(clerk)

    client.post(
        NEW, new_run_data(mode="account", account=account.number, subscriptions=subscription.number)
    )

    run = BillRun.objects.get()
    assert run.account == account
    assert list(run.subscriptions.all()) == [subscription]


def test_bad_input_is_shown_next_to_the_fields(client, clerk):
    other = billed_account()
    client.force_login(clerk)

    response = client.post(
        NEW,
        new_run_data(target_date="", mode="account", account="A-NOPE", subscriptions="S-NOPE"),
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "This field is required." in html
    assert "There is no account A-NOPE." in html

    response = client.post(
        NEW, new_run_data(mode="account", account=other.number, subscriptions="S-NOPE")
    )
    assert f"Not subscriptions of {other.number}: S-NOPE." in response.content.decode()
    assert not BillRun.objects.exists()


def test_service_refusals_are_shown_on_the_form(client, clerk):
    account = billed_account(status="Canceled")
    client.force_login(clerk)
    response = client.post(NEW, new_run_data(mode="account", account=account.number))
    assert response.status_code == 400
    assert "only Active accounts are billed" in response.content.decode()


def test_a_post_needs_the_csrf_token(clerk):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(clerk)
    assert client.post(NEW, new_run_data()).status_code == 403


# --- actions -------------------------------------------------------------------


@pytest.mark.parametrize("action", ["post", "cancel", "retry", "email", "delete"])
def test_viewers_get_403_on_every_action(client, viewer, action):
    run = run_row(failures=1, documents=1)
    client.force_login(viewer)
    assert client.post(detail(run, f"{action}/")).status_code == 403
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED


@pytest.mark.parametrize("action", ["post", "cancel", "retry", "email", "delete"])
def test_anonymous_actions_go_to_sign_in(client, action):
    run = run_row()
    response = client.post(detail(run, f"{action}/"))
    assert response.status_code == 302
    assert response.url.startswith("/accounts/login/")


@pytest.mark.parametrize("action", ["post", "cancel", "retry", "email", "delete"])
def test_actions_refuse_get(client, clerk, action):
    run = run_row()
    client.force_login(clerk)
    assert client.get(detail(run, f"{action}/")).status_code == 405


def test_posting_a_run_posts_its_invoices(client, clerk, django_capture_on_commit_callbacks):
    run = executed_run(clean=2)
    client.force_login(clerk)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(detail(run, "post/"), follow=True)

    run.refresh_from_db()
    assert run.status == RunStatus.POSTED
    assert set(run.documents.values_list("status", flat=True)) == {DocumentStatus.POSTED}
    assert f"{run.number} is being posted." in response.content.decode()


def test_a_refused_action_shows_a_message_and_changes_nothing(client, clerk):
    run = run_row(status=RunStatus.PENDING)
    client.force_login(clerk)

    response = client.post(detail(run, "post/"), follow=True)

    run.refresh_from_db()
    assert run.status == RunStatus.PENDING
    html = response.content.decode()
    assert 'class="message message-error"' in html
    assert f"{run.number} is Pending" in html


def test_canceling_a_pending_run(client, clerk):
    run = run_row(status=RunStatus.PENDING)
    client.force_login(clerk)
    client.post(detail(run, "cancel/"))
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELED


def test_canceling_a_completed_run_cancels_its_drafts(
    client, clerk, django_capture_on_commit_callbacks
):
    run = executed_run(clean=2)
    client.force_login(clerk)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(detail(run, "cancel/"))
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELED
    assert set(run.documents.values_list("status", flat=True)) == {DocumentStatus.CANCELED}


def test_retrying_makes_a_new_run_for_the_failed_accounts(client, clerk):
    run = executed_run(clean=1, without_contact=1)
    client.force_login(clerk)

    response = client.post(detail(run, "retry/"))

    retry = BillRun.objects.get(retry_of=run)
    assert response.url == detail(retry)


def test_retrying_a_run_without_failures_is_refused(client, clerk):
    run = executed_run(clean=1)
    client.force_login(clerk)
    response = client.post(detail(run, "retry/"), follow=True)
    assert "has no failed accounts to retry" in response.content.decode()
    assert BillRun.objects.count() == 1


def test_deleting_a_canceled_run(client, clerk):
    run = run_row(status=RunStatus.CANCELED)
    client.force_login(clerk)
    response = client.post(detail(run, "delete/"))
    assert response.url == LIST
    assert not BillRun.objects.filter(pk=run.pk).exists()


def test_deleting_a_completed_run_is_refused(client, clerk):
    run = run_row(documents=1)
    client.force_login(clerk)
    client.post(detail(run, "delete/"))
    assert BillRun.objects.filter(pk=run.pk).exists()
    assert Document.objects.filter(bill_run=run).exists()


def test_email_queues_the_run_documents(client, clerk):
    # More in test_document_emails.py.
    run = run_row(status=RunStatus.POSTED)
    client.force_login(clerk)
    response = client.post(detail(run, "email/"), follow=True)
    assert f"The documents of {run.number} are being emailed" in response.content.decode()


# --- the run's page while a worker moves it on (issue 11, items 7, 11, 12) --------


def live(client, run, drawn, **query):
    """The page's polled region, as htmx asks for it."""
    return client.get(
        detail(run, "progress/"), query, HTTP_HX_REQUEST="true", HTTP_X_RUN_DRAWN=drawn
    )


def test_everything_that_changes_while_a_run_works_refreshes_together(client, viewer):
    run = run_row(
        status=RunStatus.PROCESSING,
        accounts_selected=6000,
        accounts_processed=4000,
        started_at=datetime.datetime(2026, 2, 1, 6, 0, tzinfo=datetime.UTC),
    )
    client.force_login(viewer)

    page = client.get(detail(run), {"tab": "failures"}).content.decode()
    region = live(client, run, "Processing", tab="failures")

    assert region.status_code == 200
    html = region.content.decode()
    assert "<html" not in html
    # The page polls the region with its own tab, and the region is the page's.
    assert f'hx-get="{detail(run, "progress/")}?tab=failures"' in page
    assert html.strip() in page
    for part in (
        'data-testid="billrun-status">Processing<',  # the badge
        'data-testid="stat-processed">4000<',  # the counters
        "of 6000 selected",
        'data-testid="run-started">2026-02-01 06:00:00<',  # the details
        "4000 of 6000 accounts processed",  # the bar
        'data-testid="failures-tab"',  # the tabs
        'class="page-actions"',  # the buttons
    ):
        assert part in html, part
    assert 'hx-trigger="every 2s"' in html


def test_a_run_moving_from_pending_to_processing_redraws_the_region(client, viewer):
    run = run_row(status=RunStatus.PENDING)
    client.force_login(viewer)
    page = client.get(detail(run)).content.decode()
    assert "not selected yet" in page and "Waiting for a worker" in page

    BillRun.objects.filter(pk=run.pk).update(
        status=RunStatus.PROCESSING, accounts_selected=10, accounts_processed=3
    )
    response = live(client, run, "Pending")

    assert "HX-Refresh" not in response
    html = response.content.decode()
    assert 'data-testid="billrun-status">Processing<' in html
    assert "3 of 10 accounts processed" in html


def test_the_page_reloads_once_the_run_settles_and_then_polls_no_more(client, viewer):
    run = run_row(status=RunStatus.PROCESSING, accounts_selected=2, accounts_processed=1)
    client.force_login(viewer)
    BillRun.objects.filter(pk=run.pk).update(status=RunStatus.COMPLETED, accounts_processed=2)

    response = live(client, run, "Processing")

    assert response.status_code == 204
    assert response["HX-Refresh"] == "true"
    page = client.get(detail(run)).content.decode()
    assert "hx-trigger" not in page
    assert 'data-testid="billrun-progress"' not in page


def test_posting_shows_documents_posted_not_accounts_generated(client, viewer):
    run = run_row(status=RunStatus.POST_IN_PROGRESS, documents=4)
    Document.objects.filter(pk=run.documents.order_by("id").first().pk).update(
        status=DocumentStatus.POSTED
    )
    client.force_login(viewer)

    html = live(client, run, "PostInProgress").content.decode()

    assert "Posting documents" in html
    assert 'data-testid="billrun-progress-text">1 of 4 documents posted<' in html
    assert 'max="4" value="1"' in html


def test_post_is_the_main_button_only_when_there_is_something_to_post(client, clerk):
    empty = run_row(status=RunStatus.COMPLETED)
    billed = run_row(status=RunStatus.COMPLETED, documents=2)
    client.force_login(clerk)

    empty_html = client.get(detail(empty)).content.decode()
    billed_html = client.get(detail(billed)).content.decode()

    assert 'class="button button-secondary" data-testid="post-billrun"' in empty_html
    assert "This run has no Draft documents to post" in empty_html
    assert 'class="button button-primary" data-testid="post-billrun"' in billed_html
    assert "Posting posts the run's 2 Draft documents" in billed_html


def test_cancel_is_not_offered_on_a_run_with_posted_documents(client, clerk):
    run = run_row(status=RunStatus.COMPLETED, documents=2)
    Document.objects.filter(pk=run.documents.first().pk).update(status=DocumentStatus.POSTED)
    client.force_login(clerk)

    html = client.get(detail(run)).content.decode()

    assert 'data-testid="cancel-billrun"' not in html
    assert 'id="cancel"' not in html
    assert "Cannot be canceled: It has posted documents" in html


def test_a_canceled_run_says_how_many_invoices_it_canceled(client, viewer):
    run = run_row(status=RunStatus.CANCELED, documents=3, invoices_count=0, totals={})
    run.documents.update(status=DocumentStatus.CANCELED)
    client.force_login(viewer)

    html = client.get(detail(run)).content.decode()

    assert 'data-testid="stat-invoices">0<' in html
    assert 'data-testid="invoices-canceled">3 canceled<' in html


def test_the_banner_counts_failed_accounts_and_says_which_failed_by_a_subscription(client, viewer):
    run = run_row(failures=2)
    account = billed_account()
    BillRunFailure.objects.create(
        bill_run=run,
        account=account,
        subscription=account.subscriptions.get(),
        reason="Charge currency EUR differs from account currency USD",
    )
    BillRun.objects.filter(pk=run.pk).update(accounts_failed=3)
    client.force_login(viewer)

    html = client.get(detail(run)).content.decode()

    assert (
        "3 accounts failed to generate invoices and were not billed, "
        "1 of them because a subscription failed."
    ) in html
    assert "There are subscriptions that failed" not in html


def test_the_post_confirmation_says_how_many_accounts_failed(client, clerk):
    run = run_row(status=RunStatus.COMPLETED, failures=3, documents=2)
    client.force_login(clerk)

    html = client.get(detail(run)).content.decode()

    dialog = html.split('<dialog class="confirm-dialog" id="post"', 1)[1].split("</dialog>")[0]
    assert "3 accounts failed and are not billed by posting" in dialog


def test_the_post_confirmation_warns_of_documents_posted_already_past_due(client, clerk):
    today = timezone.localdate()
    late = run_row(status=RunStatus.COMPLETED, documents=2)
    first, second = late.documents.order_by("id")
    Document.objects.filter(pk=first.pk).update(due_date=today - datetime.timedelta(days=3))
    Document.objects.filter(pk=second.pk).update(due_date=today)
    on_time = run_row(status=RunStatus.COMPLETED, documents=1)
    on_time.documents.update(due_date=today)
    client.force_login(clerk)

    late_html = client.get(detail(late)).content.decode()
    on_time_html = client.get(detail(on_time)).content.decode()

    assert 'data-testid="post-past-due"' in late_html
    earliest = (today - datetime.timedelta(days=3)).isoformat()
    assert f"1 of them is due before today (from {earliest})" in late_html
    assert 'data-testid="post-past-due"' not in on_time_html


def posted_run_with_deliveries(*, sent, failed, documents, at=None):
    run = run_row(status=RunStatus.POSTED, documents=documents)
    run.documents.update(status=DocumentStatus.POSTED)
    docs = list(run.documents.order_by("id"))
    for document, status in zip(
        docs, [DeliveryStatus.SENT] * sent + [DeliveryStatus.FAILED] * failed, strict=False
    ):
        delivery = DocumentDelivery.objects.create(
            document=document, to_address="ap@example.com", status=status, attempts=1
        )
        if at is not None:
            DocumentDelivery.objects.filter(pk=delivery.pk).update(created_at=at)
    return run


def test_the_run_page_shows_the_customer_emails_sent_failed_and_pending(client, viewer):
    run = posted_run_with_deliveries(sent=2, failed=1, documents=4)
    client.force_login(viewer)

    html = client.get(detail(run)).content.decode()

    counts = html.split('data-testid="customer-emails-counts">', 1)[1].split("</ul>")[0]
    assert "<strong>2</strong> sent" in counts
    assert "<strong>1</strong> failed" in counts
    assert "<strong>1</strong> pending" in counts
    assert "3 of 4 posted documents done" in html
    # Emails are going out: the page follows them.
    assert 'hx-trigger="every 2s"' in html
    region = live(client, run, "Posted")
    assert region.status_code == 200 and "customer-emails" in region.content.decode()


def test_emails_that_stopped_going_out_are_said_not_emailed_and_not_polled(client, viewer):
    long_ago = timezone.now() - datetime.timedelta(hours=1)
    run = posted_run_with_deliveries(sent=1, failed=0, documents=3, at=long_ago)
    client.force_login(viewer)

    html = client.get(detail(run)).content.decode()

    assert "2 documents not emailed yet" in html
    assert "hx-trigger" not in html


def test_the_page_follows_the_emails_from_the_click_on(client, clerk):
    run = run_row(status=RunStatus.POSTED, documents=2)
    run.documents.update(status=DocumentStatus.POSTED)
    client.force_login(clerk)
    assert 'data-testid="customer-emails"' not in client.get(detail(run)).content.decode()

    html = client.post(detail(run, "email/"), follow=True).content.decode()

    assert "<strong>2</strong> pending" in html
    assert 'hx-trigger="every 2s"' in html


def test_all_emails_done_stops_the_polling_without_a_reload(client, viewer):
    run = posted_run_with_deliveries(sent=2, failed=0, documents=2)
    client.force_login(viewer)

    response = live(client, run, "Posted")

    assert response.status_code == 200
    assert "hx-trigger" not in response.content.decode()
    assert "2 of 2 posted documents done" in response.content.decode()


def test_the_list_shows_two_lines_of_totals_at_most_and_all_of_them_when_expanded(client, viewer):
    run_row(
        totals={
            "USD": "19999999999999.98",
            "EUR": "-1234567.89",
            "CAD": "5817.72",
            "GBP": "1.00",
            "CHF": "0.00",
        }
    )
    client.force_login(viewer)

    html = client.get(LIST).content.decode()

    row, details = html.split('data-testid="billrun-details"', 1)
    assert "5,817.72 CAD" in row and "+ 4 more currencies" in row
    assert "19,999,999,999,999.98" not in row
    for line in ("-1,234,567.89 EUR", "19,999,999,999,999.98 USD", "0.00 CHF", "1.00 GBP"):
        assert line in details
