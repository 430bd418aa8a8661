"""The Review tab's pages (issue 17): keyset pages over the places written
with the review, for every sort order, filtered by flag; cursors that are
forged or garbled; the review written when a run completes."""

import datetime
import re
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core import signing
from django.urls import reverse

from billruns import review, services
from billruns.models import ReviewFlag, RunReview, RunStatus
from tests.factories import AccountFactory, ChargeFactory, SubscriptionFactory
from tests.view_data import document_row, run_row

pytestmark = pytest.mark.django_db

TODAY = datetime.date(2026, 2, 15)
PER_PAGE = 7


@pytest.fixture
def tied_review():
    """31 accounts, 30 billed by either run: totals in few values (ties in every column), some not
    billed last time (new), some not billed this time (missing), a credit
    and a zero; so every sort has ties, nulls and a short last page."""
    last = run_row(status=RunStatus.POSTED)
    this = run_row()
    for number in range(31):
        account = AccountFactory(number=f"T-{(number * 17) % 31:03d}")
        if number % 5 != 0:
            document_row(bill_run=last, account=account, amount=f"{100 + 10 * (number % 3)}.00")
        if number % 7 == 3:
            continue  # not billed this time
        amount = ("0.00", "100.00", "130.00", "100.00")[number % 4]
        document_row(bill_run=this, account=account, amount=amount)
    return review.review_state(this).review


def oracle(the_review, sort, flag=""):
    """The review's lines in ``sort`` by Python: the key with nulls last,
    then the account number (reversed whole for a descending sort)."""
    lines = list(review.lines_flagged(the_review, flag, today=TODAY))
    column = {"account": "account_number"}.get(sort.lstrip("-"), sort.lstrip("-"))

    def key(line):
        value = getattr(line, column)
        return (value is None, value if value is not None else 0, line.account_number)

    ordered = sorted(lines, key=key)
    return [line.account_number for line in (ordered[::-1] if sort.startswith("-") else ordered)]


def walk(the_review, sort, flag=""):
    """Every page from the first by Next, then back by Previous from the
    last; the rows' numbers each page says."""
    forward, firsts = [], []
    page = review.review_page(
        the_review, sort=sort, flag=flag, cursor="", today=TODAY, per_page=PER_PAGE
    )
    while True:
        assert page.first == len(forward) + 1
        firsts.append(page.first)
        forward += [line.account_number for line in page.rows]
        if page.next_cursor is None:
            break
        assert len(page.rows) == PER_PAGE
        page = review.review_page(
            the_review,
            sort=sort,
            flag=flag,
            cursor=page.next_cursor,
            today=TODAY,
            per_page=PER_PAGE,
        )
    last = review.review_page(
        the_review, sort=sort, flag=flag, cursor=review.LAST, today=TODAY, per_page=PER_PAGE
    )
    backward = []
    page = last
    while True:
        backward = [line.account_number for line in page.rows] + backward
        assert page.first == len(forward) - len(backward) + 1
        if page.previous_cursor is None:
            break
        page = review.review_page(
            the_review,
            sort=sort,
            flag=flag,
            cursor=page.previous_cursor,
            today=TODAY,
            per_page=PER_PAGE,
        )
    return forward, backward, firsts, last


SORTS = [prefix + column for column in review.SORT_PLACES for prefix in ("", "-")]


@pytest.mark.parametrize("sort", SORTS)
def test_every_sort_pages_every_line_once_in_order_both_ways(tied_review, sort):
    forward, backward, firsts, last = walk(tied_review, sort)
    expected = oracle(tied_review, sort)
    assert len(expected) == tied_review.lines_count == 30
    assert forward == expected  # no row twice, none missing, ties by account
    assert backward == expected
    assert firsts == [1, 8, 15, 22, 29]
    assert (last.first, last.last, last.total) == (29, 30, 30)
    assert last.sentence == "Showing rows 29–30 of 30"


@pytest.mark.parametrize("flag", [flag.value for flag in ReviewFlag])
@pytest.mark.parametrize("sort", ["account", "-change", "percent"])
def test_a_flag_filter_pages_its_lines_and_counts_them(tied_review, flag, sort):
    expected = oracle(tied_review, sort, flag)
    forward, backward, _, last = walk(tied_review, sort, flag)
    assert forward == backward == expected
    counts = review.flag_counts(tied_review, today=TODAY)
    assert counts[flag] == len(expected)
    if expected:
        assert last.total == len(expected)
    flagged = {
        line.account_number
        for line in tied_review.lines.all()
        if ReviewFlag(flag) in review.line_flags(line, today=TODAY)
    }
    assert set(expected) == flagged


def test_the_fixture_raises_every_stored_flag(tied_review):
    counts = tied_review.counts
    for flag in ("missing", "new", "changed", "zero"):
        assert counts[flag] > 0, flag


def test_a_cursor_of_another_sort_or_filter_is_the_first_page(tied_review):
    page = review.review_page(tied_review, sort="change", flag="", cursor="", today=TODAY)
    second = review.review_page(
        tied_review, sort="change", flag="", cursor=page.next_cursor, today=TODAY, per_page=5
    )
    assert second.first == 26
    other = review.review_page(
        tied_review, sort="-change", flag="", cursor=page.next_cursor, today=TODAY
    )
    assert (other.first, other.refused) == (1, "")
    assert [line.account_number for line in other.rows] == oracle(tied_review, "-change")[:25]


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "1.account..after.3.4",
        "",
        "last:x",
        "%00",
        "9" * 400,
    ],
)
def test_a_forged_or_garbled_cursor_shows_the_first_page_with_a_message(tied_review, cursor):
    page = review.review_page(tied_review, sort="account", flag="", cursor=cursor, today=TODAY)
    assert page.first == 1
    assert [line.account_number for line in page.rows] == oracle(tied_review, "account")[:25]
    assert bool(page.refused) == bool(cursor)


def test_a_signed_cursor_with_a_bad_value_is_refused_too(tied_review):
    signer = signing.Signer(salt=review.CURSOR_SALT)
    for value in (
        f"{tied_review.pk}.account..after.x.2",
        "a.b",
        f"{tied_review.pk}.account..up.3.4",
    ):
        page = review.review_page(
            tied_review, sort="account", flag="", cursor=signer.sign(value), today=TODAY
        )
        assert page.first == 1


def test_the_tab_pages_by_cursor_and_never_errs_on_a_bad_one(client, viewer, tied_review):
    client.force_login(viewer)
    url = reverse("billruns:detail", args=[tied_review.bill_run.number])
    first = client.get(url, {"tab": "review", "sort": "-change"}).content.decode()
    assert "Showing rows 1–25 of 30" in first
    assert 'data-testid="review-previous"' not in first
    next_link = re.search(r'rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    second = client.get(url + next_link.split("#")[0]).content.decode()
    assert "Showing rows 26–30 of 30" in second
    assert 'data-testid="review-next"' not in second
    assert 'data-testid="review-first"' in second
    rows = re.findall(r'data-testid="review-row"', second)
    assert len(rows) == 5
    last = client.get(url, {"tab": "review", "sort": "-change", "cursor": "last"})
    assert "Showing rows 26–30 of 30" in last.content.decode()
    # (A NUL, or a value over 1,000 characters, is the site's 400 before any view.)
    for bad in ("nonsense", "last ", "1:2:3", "x" * 999):
        page = client.get(url, {"tab": "review", "cursor": bad})
        assert page.status_code == 200
        html = page.content.decode()
        assert 'data-testid="review-cursor-refused"' in html
        assert "Showing rows 1–25 of 30" in html
    # A flag chip keeps the sort; a sort link starts on the first page.
    assert 'flag=missing&amp;sort=-change#tabs"' in first
    flagged = client.get(url, {"tab": "review", "flag": "missing", "sort": "-change"})
    assert (
        flagged.content.decode().count('data-testid="review-row"')
        == (tied_review.counts["missing"])
    )


def test_the_export_holds_every_line_in_the_sort(client, viewer, tied_review):
    client.force_login(viewer)
    url = reverse("billruns:detail", args=[tied_review.bill_run.number])
    export = client.get(url, {"tab": "review", "sort": "-percent", "_export": "csv"})
    accounts = [line.split(",")[0] for line in export.content.decode().splitlines()[1:]]
    assert accounts == oracle(tied_review, "-percent")


def test_a_completed_run_without_an_owner_has_its_review(django_capture_on_commit_callbacks):
    account = AccountFactory(bill_cycle_day=1)
    ChargeFactory(
        subscription=SubscriptionFactory(account=account, start_date=datetime.date(2026, 2, 1)),
        amount=Decimal("50.00"),
    )
    with django_capture_on_commit_callbacks(execute=True):
        run = services.bill_run_create(target_date=datetime.date(2026, 3, 1), enqueue=False)
        run = services.bill_run_execute(run_id=run.pk)
    assert run.status == RunStatus.COMPLETED and run.created_by is None
    written = RunReview.objects.get(bill_run=run)
    assert written.lines_count == 1 and written.counts["new"] == 1
    # Posting it keeps the review: the tab reads the same one.
    services.bill_run_post(run=run, user=None, wait=True)
    run.refresh_from_db()
    assert run.status == RunStatus.POSTED
    assert review.review_state(run).review == written


def test_a_preview_has_its_review_once_completed(django_capture_on_commit_callbacks):
    account = AccountFactory(bill_cycle_day=1)
    ChargeFactory(
        subscription=SubscriptionFactory(account=account, start_date=datetime.date(2026, 2, 1))
    )
    with django_capture_on_commit_callbacks(execute=True):
        run = services.bill_run_create(
            target_date=datetime.date(2026, 3, 1), preview=True, enqueue=False
        )
        run = services.bill_run_execute(run_id=run.pk)
    assert run.preview and RunReview.objects.filter(bill_run=run).exists()


def test_the_review_task_is_idempotent_and_skips_a_run_gone_or_unsettled():
    this = run_row(documents=2)
    first = review.run_review_write(run_id=this.pk)
    assert review.run_review_write(run_id=this.pk) == first
    assert RunReview.objects.filter(bill_run=this).count() == 1
    assert review.run_review_write(run_id=this.pk + 1000) is None
    assert review.run_review_write(run_id=run_row(status=RunStatus.PROCESSING).pk) is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_review_task_is_queued_once_the_statistics_describe_the_run(monkeypatch):
    # Planned on the statistics from before a large run, the review's one
    # statement took a nested loop over the run's documents and items that
    # ran for many minutes: the ANALYZE comes first, the task after it.
    from django.db import connection

    from billruns.services import common, execution
    from notifications import services as notices

    monkeypatch.setattr(execution, "ANALYZE_AFTER_DOCUMENTS", 1)
    events = []
    monkeypatch.setattr(common, "async_task", lambda func, *args, **kwargs: events.append(func))
    # The owner's notice reads the review too (its summary), queued by the
    # run's commit: after the ANALYZE as well.
    monkeypatch.setattr(notices, "async_task", lambda func, *args, **kwargs: events.append(func))
    owner = get_user_model().objects.create_user("owner", "owner@example.com", "pw")

    def log_analyze(execute, sql, params, many, context):
        if sql.startswith("ANALYZE"):
            events.append("ANALYZE")
        return execute(sql, params, many, context)

    account = AccountFactory(bill_cycle_day=1)
    ChargeFactory(
        subscription=SubscriptionFactory(account=account, start_date=datetime.date(2026, 2, 1))
    )
    for preview in (True, False):  # the preview first: the real run then bills the same
        events.clear()
        run = services.bill_run_create(
            target_date=datetime.date(2026, 3, 1), preview=preview, enqueue=False, created_by=owner
        )
        with connection.execute_wrapper(log_analyze):
            run = services.bill_run_execute(run_id=run.pk)
        assert run.status == RunStatus.COMPLETED
        assert notices.REVIEW_TASK in events, events
        # Every task queued once the statistics are there.
        assert events[0] == "ANALYZE" and events.count("ANALYZE") == 1, (preview, events)
        assert common.REVIEW_TASK in events
