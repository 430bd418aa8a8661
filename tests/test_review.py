"""The Review tab (issue 17): a run compared with the previous run, against
hand-built histories (tests.view_data writes the runs and documents as rows,
so every total here is known by construction)."""

import csv
import datetime
import io
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billruns import review
from billruns.models import BillRunEvent, ReviewFlag, RunReview, RunStatus
from invoices.models import DocumentStatus, DocumentType, ItemKind
from tests.factories import AccountFactory, DocumentItemFactory
from tests.view_data import TARGET, document_row, run_row

pytestmark = pytest.mark.django_db

TODAY = datetime.date(2026, 2, 15)


def lines_by_account(the_review):
    return {line.account_number: line for line in the_review.lines.all()}


def flags(line):
    return [flag.value for flag in review.line_flags(line, today=TODAY)]


@pytest.fixture
def history():
    """Last time: A 100, B 200, C 50, D a credit of 30. This time: A 130
    (+30 %), B 200, D 0, E 80 (new), F a credit of 20, G 60 with an
    adjustment; C is not billed."""
    a, b, c, d, e, f, g = (AccountFactory(number=f"ACC-{name}") for name in "ABCDEFG")
    last = run_row(status=RunStatus.POSTED, totals={"USD": "320.00"})
    for account, amount in ((a, "100.00"), (b, "200.00"), (c, "50.00")):
        document_row(bill_run=last, account=account, amount=amount, status=DocumentStatus.POSTED)
    document_row(
        bill_run=last,
        account=d,
        amount="30.00",
        document_type=DocumentType.CREDIT_MEMO,
        status=DocumentStatus.POSTED,
    )
    this = run_row(totals={"USD": "450.00"})
    for account, amount in ((a, "130.00"), (b, "200.00"), (d, "0.00"), (e, "80.00")):
        document_row(bill_run=this, account=account, amount=amount)
    document_row(bill_run=this, account=f, amount="20.00", document_type=DocumentType.CREDIT_MEMO)
    adjusted = document_row(bill_run=this, account=g, amount="60.00")
    DocumentItemFactory(document=adjusted, amount=Decimal("60.00"), kind=ItemKind.CHARGE)
    original = DocumentItemFactory(
        document=document_row(account=g, status=DocumentStatus.POSTED), amount=Decimal("10.00")
    )
    DocumentItemFactory(
        document=adjusted,
        charge=original.charge,
        amount=Decimal("-10.00"),
        kind=ItemKind.ADJUSTMENT,
        adjusts=original,
    )
    return last, this


def test_the_previous_run_is_compared_account_by_account(history):
    last, this = history
    state = review.review_state(this)
    assert state.against == last
    lines = lines_by_account(state.review)
    assert set(lines) == {f"ACC-{name}" for name in "ABCDEFG"}
    a = lines["ACC-A"]
    assert (a.previous_total, a.total, a.change) == (
        Decimal("100.00"),
        Decimal("130.00"),
        Decimal("30.00"),
    )
    assert a.percent_change == "+30.0%"
    assert flags(a) == ["changed"]
    assert flags(lines["ACC-B"]) == []
    assert lines["ACC-B"].percent_change == "+0.0%"
    c = lines["ACC-C"]
    assert (c.previous_total, c.total, c.change) == (Decimal("50.00"), None, Decimal("-50.00"))
    assert flags(c) == ["missing"]
    # A credit memo counts negative: from -30 to 0 is +30, 100 % of 30.
    d = lines["ACC-D"]
    assert (d.previous_total, d.total, d.change) == (
        Decimal("-30.00"),
        Decimal("0.00"),
        Decimal("30.00"),
    )
    assert flags(d) == ["changed", "zero"]
    e = lines["ACC-E"]
    assert (e.previous_total, e.total) == (None, Decimal("80.00"))
    assert e.percent_change == "new"
    assert flags(e) == ["new"]
    assert flags(lines["ACC-F"]) == ["new", "negative"]
    assert lines["ACC-F"].total == Decimal("-20.00")
    assert flags(lines["ACC-G"]) == ["new", "adjustments"]
    assert state.review.counts == {
        "missing": 1,
        "new": 3,
        "changed": 2,
        "zero": 1,
        "negative": 1,
        "adjustments": 1,
    }


def test_a_due_date_before_today_is_flagged_as_read_today(history):
    _, this = history
    the_review = review.review_state(this).review
    line = lines_by_account(the_review)["ACC-A"]
    assert line.due_date == TARGET + datetime.timedelta(days=30)
    assert "past_due" not in flags(line)
    assert ReviewFlag.PAST_DUE in review.line_flags(
        line, today=line.due_date + datetime.timedelta(days=1)
    )
    assert (
        review.lines_flagged(the_review, "past_due", today=datetime.date(2026, 12, 31)).count() == 6
    )


def test_per_currency_totals_come_from_both_runs(history):
    last, this = history
    (usd,) = review.currency_lines(this, last)
    assert (usd.currency, usd.previous_total, usd.total, usd.change) == (
        "USD",
        Decimal("320.00"),
        Decimal("450.00"),
        Decimal("130.00"),
    )
    assert usd.percent == "+40.6%"


def test_the_threshold_is_a_setting(history, settings):
    _, this = history
    settings.REVIEW_THRESHOLD_PERCENT = 30
    lines = lines_by_account(review.review_state(this).review)
    # +30 % is not beyond ±30 %; +100 % is.
    assert not lines["ACC-A"].beyond_threshold
    assert lines["ACC-D"].beyond_threshold


def test_the_previous_run_skips_runs_without_shared_accounts_and_unsettled_runs():
    shared = AccountFactory()
    older = run_row(status=RunStatus.COMPLETED)
    document_row(bill_run=older, account=shared)
    canceled = run_row(status=RunStatus.CANCELED)
    document_row(bill_run=canceled, account=shared, status=DocumentStatus.CANCELED)
    error = run_row(status=RunStatus.ERROR)
    unrelated = run_row(status=RunStatus.POSTED)
    document_row(bill_run=unrelated)
    failed_only = run_row(status=RunStatus.COMPLETED, failures=1)
    this = run_row()
    document_row(bill_run=this, account=shared)
    assert review.previous_run(this) == older
    assert error.id < this.id
    # An account the earlier run only failed counts too.
    failed_account = failed_only.failures.get().account
    document_row(bill_run=this, account=failed_account)
    assert review.previous_run(this) == failed_only
    # A later run is never the previous one.
    later = run_row(status=RunStatus.POSTED)
    document_row(bill_run=later, account=shared)
    assert review.previous_run(this) == failed_only


def test_a_run_with_no_previous_run_bills_every_account_for_the_first_time():
    this = run_row(documents=2)
    state = review.review_state(this)
    assert state.against is None
    assert [flags(line) for line in state.review.lines.all()] == [["new"], ["new"]]


def test_the_clerk_may_pick_another_earlier_run_and_bad_picks_are_refused(history):
    last, this = history
    run_row(status=RunStatus.COMPLETED, number="BR-OTHER")
    state = review.review_state(this, "BR-NOPE")
    assert state.against == last
    assert state.refused == "There is no bill run BR-NOPE; compared with the previous run."
    state = review.review_state(this, "BR-OTHER")
    assert "is not earlier than" in state.refused
    assert state.against == last
    # An earlier run that shares no account may be picked all the same.
    unrelated = run_row(status=RunStatus.COMPLETED, number="BR-UNRELATED", documents=1)
    assert unrelated.id > this.id
    assert review.review_state(this, last.number).refused == ""


def test_an_earlier_run_in_error_is_refused_by_name():
    failed = run_row(status=RunStatus.ERROR, number="BR-ERROR")
    this = run_row(documents=1)
    state = review.review_state(this, "BR-ERROR")
    assert state.refused == (
        "BR-ERROR is Error: only a Completed or Posted run can be compared; "
        "compared with the previous run."
    )
    assert failed.id < this.id


def test_a_run_not_yet_completed_has_no_review():
    this = run_row(status=RunStatus.PROCESSING, documents=1)
    state = review.review_state(this)
    assert state.waiting and state.review is None
    assert not RunReview.objects.exists()


def test_the_review_is_written_once_and_again_when_a_run_moves_on(history):
    last, this = history
    first = review.review_state(this).review
    assert review.review_state(this).review == first
    assert first.lines.count() == 7
    # Posting the run changes no amount: the review stays.
    for from_status, to_status in (
        (RunStatus.COMPLETED, RunStatus.POST_IN_PROGRESS),
        (RunStatus.POST_IN_PROGRESS, RunStatus.COMPLETED),
        (RunStatus.POST_IN_PROGRESS, RunStatus.POSTED),
    ):
        BillRunEvent.objects.create(
            bill_run=this, from_status=from_status, to_status=to_status, at=this.created_at
        )
    assert review.review_state(this).review == first
    # The previous run is canceled and completed again (its documents change).
    BillRunEvent.objects.create(
        bill_run=last,
        from_status=RunStatus.CANCEL_IN_PROGRESS,
        to_status=RunStatus.COMPLETED,
        at=last.created_at,
    )
    second = review.review_state(this).review
    assert second != first
    assert list(RunReview.objects.filter(bill_run=this)) == [second]
    assert second.lines.count() == 7


def test_the_tab_shows_the_comparison(client, viewer, history):
    _, this = history
    client.force_login(viewer)
    url = reverse("billruns:detail", args=[this.number])
    page = client.get(url, {"tab": "review"})
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="review-tab"' in html
    assert html.count('data-testid="review-row"') == 7
    assert "+30.0%" in html and "new" in html
    assert 'data-flag="changed"' in html
    assert (
        f'Compared with <a href="{reverse("billruns:detail", args=[history[0].number])}">' in html
    )
    flagged = client.get(url, {"tab": "review", "flag": "missing"}).content.decode()
    assert flagged.count('data-testid="review-row"') == 1 and "ACC-C" in flagged
    by_change = client.get(url, {"tab": "review", "sort": "-change"}).content.decode()
    assert by_change.index("ACC-A") < by_change.index("ACC-B") < by_change.index("ACC-C")


def test_the_tab_exports_every_line(client, viewer, history):
    _, this = history
    client.force_login(viewer)
    url = reverse("billruns:detail", args=[this.number])
    export = client.get(url, {"tab": "review", "_export": "csv"})
    rows = list(csv.reader(io.StringIO(export.content.decode())))
    assert rows[0] == [
        "Account",
        "Account name",
        "Currency",
        "Last time",
        "This run",
        "Change",
        "Change %",
        "Flags",
    ]
    by_account = {row[0]: row for row in rows[1:]}
    assert by_account["ACC-C"][3:7] == ["50.00", "", "-50.00", "-100.0"]
    # Due on 2026-03-03, before the real today.
    assert by_account["ACC-A"][6:8] == [
        "30.0",
        "Changed beyond the threshold; Due date already passed",
    ]
    assert by_account["ACC-E"][6] == "new"


def test_the_tab_waits_for_a_run_in_progress(client, viewer):
    this = run_row(status=RunStatus.PROCESSING, documents=1)
    client.force_login(viewer)
    page = client.get(reverse("billruns:detail", args=[this.number]), {"tab": "review"})
    assert 'data-testid="review-waiting"' in page.content.decode()


def _review_queries(client, run):
    """The queries of a sorted page, the last page and a filtered deep page."""
    url = reverse("billruns:detail", args=[run.number])
    client.get(url, {"tab": "review"})  # the review is written once
    counted = []
    for query in (
        {"sort": "-percent"},
        {"sort": "change", "cursor": "last"},
        {"flag": "changed", "cursor": "last"},
    ):
        with CaptureQueriesContext(connection) as queries:
            page = client.get(url, {"tab": "review", **query})
        assert page.status_code == 200
        counted.append(len(queries))
    return counted


def test_the_tab_reads_a_constant_number_of_queries(client, viewer):
    client.force_login(viewer)
    small_last = run_row(status=RunStatus.POSTED, documents=0)
    small = run_row(documents=0)
    for _ in range(3):
        account = AccountFactory()
        document_row(bill_run=small_last, account=account)
        document_row(bill_run=small, account=account, amount="150.00")
    large_last = run_row(status=RunStatus.POSTED, documents=0)
    large = run_row(documents=0)
    for _ in range(40):
        account = AccountFactory()
        document_row(bill_run=large_last, account=account)
        document_row(bill_run=large, account=account, amount="150.00")
    assert _review_queries(client, small) == _review_queries(client, large)


def test_the_summary_names_the_flags_and_the_biggest_changes(history):
    last, this = history
    summary = review.review_summary(this, today=TODAY)
    assert summary.against == last
    assert summary.text == (
        f"Review (against {last.number}): 1 not billed this time, 3 billed for the first time, "
        "2 changed beyond the threshold, 1 zero total, 1 negative total (credit), "
        "1 has adjustments."
    )
    assert [(line.account_number, line.change) for line in summary.biggest] == [
        ("ACC-E", Decimal("80.00")),
        ("ACC-G", Decimal("60.00")),
        ("ACC-C", Decimal("-50.00")),
    ]


def test_the_post_confirmation_says_what_the_review_raised(client, clerk, history):
    _, this = history
    client.force_login(clerk)
    html = client.get(reverse("billruns:detail", args=[this.number])).content.decode()
    assert 'data-testid="post-totals">Totals: <strong>450.00&nbsp;USD</strong>.' in html
    start = html.index('data-testid="post-review"')
    assert "2 changed beyond the threshold" in html[start : start + 600]
    assert 'href="?tab=review#tabs">Open the Review tab' in html[start : start + 900]


def test_the_notice_and_the_email_carry_the_review(
    clerk, history, django_capture_on_commit_callbacks
):
    from notifications import services
    from notifications.models import RunNotification

    last, this = history
    this.created_by = clerk
    this.save(update_fields=["created_by"])
    with django_capture_on_commit_callbacks(execute=True):
        delivery = services.run_finished_notify(run_id=this.pk)
    notice = RunNotification.objects.get(bill_run=this)
    assert notice.summary.startswith(f"Review (against {last.number}): 1 not billed this time")
    email = services.build_run_email(delivery)
    assert notice.summary in email.body
    assert "  - ACC-E: — -> 80.00 USD (+80.00, new)" in email.body
    assert "  - ACC-C: 50.00 USD -> — (-50.00, -100.0%)" in email.body
    assert f"/billing/bill-runs/{this.number}/?tab=review#tabs" in email.body
    html = email.alternatives[0][0]
    assert "Biggest changes" in html and notice.summary in html
