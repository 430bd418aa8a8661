"""The Review tab: a run compared with the previous run (issue 17).

The previous run of a run is the latest earlier run (by number order) that
is not a preview, is Completed or Posted, and billed or failed at least one
account that this run billed or failed (docs/billing-rules.md, *Reviewing a
run*). The clerk may pick another earlier run.

The comparison covers every account either run billed, one line each: its
total this time and last time (signed: a credit memo counts negative), the
change, flags. At 100,000 accounts it cannot be computed in the request for
every page, sort and filter, so it is written once for the pair by one
INSERT ... SELECT (``_write_lines``) into ReviewLine, and each page is then
one indexed query. The rows are keyed by the two runs' last status events
(``stamp``): a run canceled or completed again since gets new rows, and the
old ones are deleted in the same transaction.
"""

import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Max, Q
from django.utils.formats import number_format

from billruns.models import (
    BillRun,
    BillRunEvent,
    BillRunFailure,
    ReviewFlag,
    ReviewLine,
    RunReview,
    RunStatus,
)
from core.money import format_percent_change
from customers.models import Account
from invoices.models import Document, DocumentItem, DocumentStatus, DocumentType, ItemKind

# Runs whose documents are settled: a review is made only of these, and only
# these are the previous run of another.
COMPARABLE = (RunStatus.COMPLETED, RunStatus.POSTED)
# A run being posted keeps its amounts: its review stays as it was.
REVIEWABLE = (*COMPARABLE, RunStatus.POST_IN_PROGRESS)
# How many earlier runs the picker offers.
PICKER_SIZE = 50


def _nulls_last(column):
    return f"CASE WHEN c.{column} IS NULL THEN 1 ELSE 0 END, c.{column}, "


# Each place of a line (ReviewLine.pos_*): the order it numbers, before the
# account number that breaks ties. Nulls come last, on both databases.
PLACE_KEYS = {
    "pos_account": "",
    "pos_currency": "c.currency, ",
    "pos_previous": _nulls_last("previous_total"),
    "pos_total": _nulls_last("total"),
    "pos_change": "c.change, ",
    "pos_percent": _nulls_last("percent"),
}
# The Review tab's sortable columns (billruns.tables.ReviewTable) and the
# place each sorts by.
SORT_PLACES = {
    "account": "pos_account",
    "currency": "pos_currency",
    "previous_total": "pos_previous",
    "total": "pos_total",
    "change": "pos_change",
    "percent": "pos_percent",
}


def _accounts_touched(run):
    """Two subqueries: the accounts a run billed (a document not canceled)
    and those it failed."""
    # all_objects: the Review tab of a preview reads its Preview documents
    # (a preview is never the previous run of another: earlier_runs).
    billed = Document.all_objects.filter(bill_run=run).exclude(status=DocumentStatus.CANCELED)
    failed = BillRunFailure.objects.filter(bill_run=run)
    return billed.values("account_id"), failed.values("account_id")


def earlier_runs(run):
    """The runs that may be compared with ``run``, latest first."""
    return BillRun.objects.filter(id__lt=run.id, status__in=COMPARABLE, preview=False).order_by(
        "-id"
    )


def previous_run(run):
    """The run's previous run (see the module's docstring), or None."""
    billed, failed = _accounts_touched(run)
    if not billed.exists() and not failed.exists():
        return None
    shared = Q(account_id__in=billed) | Q(account_id__in=failed)
    # Almost always the first candidate shares an account: one query each.
    for candidate in (
        earlier_runs(run).only("id", "number", "status", "totals").iterator(chunk_size=20)
    ):
        other_billed, other_failed = _accounts_touched(candidate)
        if other_billed.filter(shared).exists() or other_failed.filter(shared).exists():
            return candidate
    return None


# Posting changes no amount of a run (its documents go from Draft to
# Posted, or stay Draft when it fails): a review outlives it.
POSTING = Q(to_status__in=[RunStatus.POST_IN_PROGRESS, RunStatus.POSTED]) | Q(
    from_status=RunStatus.POST_IN_PROGRESS, to_status=RunStatus.COMPLETED
)


def _stamp(run, against) -> str:
    last = dict(
        BillRunEvent.objects.filter(bill_run_id__in=[run.id, getattr(against, "id", None)])
        .exclude(POSTING)
        .values("bill_run_id")
        .annotate(last=Max("id"))
        .values_list("bill_run_id", "last")
    )
    parts = [str(run.id), str(last.get(run.id, 0))]
    if against is not None:
        parts += [str(against.id), str(last.get(against.id, 0))]
    return ":".join(parts)


def _runs_key(run) -> str:
    """What a run's previous run and both runs' reviews depend on: the last
    status event (posting aside) of this run and of every earlier one. A
    run that completes, is canceled or deleted (its review goes with it)
    moves it on."""
    last = (
        BillRunEvent.objects.filter(bill_run_id__lte=run.id)
        .exclude(POSTING)
        .aggregate(last=Max("id"))["last"]
    )
    return f"{run.id}:{last or 0}"


def _param(field, value):
    return field.get_db_prep_value(value, connection)


def _write_lines(review, run, against):
    """Every account either run billed, as ReviewLine rows: one statement."""
    line = ReviewLine._meta
    document = Document._meta.db_table
    item = DocumentItem._meta.db_table
    account = Account._meta.db_table
    money = line.get_field("change")
    largest = Decimal(money.limit) - Decimal("0.01")
    floating = "REAL" if connection.vendor == "sqlite" else "double precision"
    # Integer percent points of the threshold, in hundredths: exact on both
    # databases (SQLite keeps money as cents; the units cancel out).
    threshold = review.threshold_percent * 100
    # Each sort order's place: the key with nulls last, then the account
    # number (unique in a review), so that a place is a keyset cursor.
    places = ",\n            ".join(
        f"ROW_NUMBER() OVER (ORDER BY {key}c.account_number)" for key in PLACE_KEYS.values()
    )
    # Only table names, a type name and the fixed sort keys are formatted
    # in; values are parameters.
    sql = f"""
        INSERT INTO {line.db_table} (
            review_id, account_id, account_number, currency, total, previous_total,
            change, percent, beyond_threshold, has_adjustments, due_date,
            {", ".join(PLACE_KEYS)}
        )
        SELECT %(review)s, c.account_id, c.account_number, c.currency, c.total,
            c.previous_total, c.change, c.percent, c.beyond_threshold, c.has_adjustments,
            c.due_date,
            {places}
        FROM (
        SELECT g.account_id, a.number AS account_number, g.currency, g.total, g.previous_total,
            CASE WHEN g.change > %(largest)s THEN %(largest)s
                 WHEN g.change < %(smallest)s THEN %(smallest)s
                 ELSE g.change END AS change,
            CASE WHEN g.previous_total IS NULL OR g.previous_total = 0 THEN NULL
                 ELSE CAST(g.change AS {floating}) * 100
                      / ABS(CAST(g.previous_total AS {floating})) END AS percent,
            CASE WHEN g.total IS NOT NULL AND g.previous_total IS NOT NULL
                      AND g.previous_total <> 0
                      AND ABS(g.change) * 10000 > %(threshold)s * ABS(g.previous_total)
                 THEN TRUE ELSE FALSE END AS beyond_threshold,
            g.adjusted = 1 AS has_adjustments,
            g.due_date
        FROM (
            SELECT s.account_id, MAX(s.currency) AS currency,
                SUM(CASE WHEN s.side = 1 THEN s.signed END) AS total,
                SUM(CASE WHEN s.side = 0 THEN s.signed END) AS previous_total,
                COALESCE(SUM(CASE WHEN s.side = 1 THEN s.signed END), 0)
                    - COALESCE(SUM(CASE WHEN s.side = 0 THEN s.signed END), 0) AS change,
                MAX(s.adjusted) AS adjusted,
                MIN(s.due_date) AS due_date
            FROM (
                SELECT 1 AS side, d.account_id, d.currency,
                    CASE WHEN d.document_type = %(credit_memo)s THEN -d.amount
                         ELSE d.amount END AS signed,
                    CASE WHEN adj.document_id IS NULL THEN 0 ELSE 1 END AS adjusted,
                    d.due_date
                FROM {document} d
                LEFT JOIN (
                    SELECT DISTINCT i.document_id FROM {item} i
                    JOIN {document} di ON di.id = i.document_id
                    WHERE di.bill_run_id = %(run)s AND i.kind = %(adjustment)s
                ) adj ON adj.document_id = d.id
                WHERE d.bill_run_id = %(run)s AND d.status <> %(canceled)s
                UNION ALL
                SELECT 0, d.account_id, d.currency,
                    CASE WHEN d.document_type = %(credit_memo)s THEN -d.amount
                         ELSE d.amount END,
                    0, NULL
                FROM {document} d
                WHERE d.bill_run_id = %(against)s AND d.status <> %(canceled)s
            ) s
            GROUP BY s.account_id
        ) g
        JOIN {account} a ON a.id = g.account_id
        ) c
    """  # noqa: S608
    params = {
        "review": review.id,
        "run": run.id,
        "against": against.id if against is not None else -1,
        "credit_memo": DocumentType.CREDIT_MEMO.value,
        "adjustment": ItemKind.ADJUSTMENT.value,
        "canceled": DocumentStatus.CANCELED.value,
        "threshold": threshold,
        "largest": _param(money, largest),
        "smallest": _param(money, -largest),
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


FLAG_FILTERS = {
    ReviewFlag.MISSING: Q(total__isnull=True),
    ReviewFlag.NEW: Q(previous_total__isnull=True),
    ReviewFlag.CHANGED: Q(beyond_threshold=True),
    ReviewFlag.ZERO: Q(total=0),
    ReviewFlag.NEGATIVE: Q(total__lt=0),
    ReviewFlag.ADJUSTMENTS: Q(has_adjustments=True),
}


def _count_lines(review):
    """The review's counts, written once with it: lines, lines per flag (one
    pass over the lines), lines per due date (past_due is read by the day)."""
    counts = review.lines.aggregate(
        lines=Count("pk"),
        **{flag.value: Count("pk", filter=condition) for flag, condition in FLAG_FILTERS.items()},
    )
    review.lines_count = counts.pop("lines")
    review.counts = counts
    review.due_dates = {
        due.isoformat(): number
        for due, number in review.lines.filter(due_date__isnull=False)
        .values("due_date")
        .annotate(number=Count("pk"))
        .values_list("due_date", "number")
    }


def past_due_count(review, *, today: datetime.date) -> int:
    """The lines due before ``today``, from the review's counts (no query)."""
    return sum(number for due, number in review.due_dates.items() if due < today.isoformat())


def flag_counts(review, *, today: datetime.date) -> dict:
    counts = dict(review.counts)
    counts[ReviewFlag.PAST_DUE.value] = past_due_count(review, today=today)
    return counts


def review_of(run, against):
    """The run's review against ``against`` (None: no previous run), written
    if it is not yet; two requests at once write it once."""
    stamp = _stamp(run, against)
    found = RunReview.objects.filter(bill_run=run, against=against, stamp=stamp).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            review = RunReview.objects.create(
                bill_run=run,
                against=against,
                stamp=stamp,
                threshold_percent=settings.REVIEW_THRESHOLD_PERCENT,
            )
            RunReview.objects.filter(bill_run=run, against=against).exclude(pk=review.pk).delete()
            _write_lines(review, run, against)
            _count_lines(review)
            review.save(update_fields=["counts", "due_dates", "lines_count"])
    except IntegrityError:
        # Another request wrote it first.
        return RunReview.objects.get(bill_run=run, against=against, stamp=stamp)
    return review


def lines_flagged(review, flag: str, *, today: datetime.date):
    lines = review.lines.select_related("account")
    if flag == ReviewFlag.PAST_DUE:
        return lines.filter(due_date__lt=today)
    if flag in FLAG_FILTERS:
        return lines.filter(FLAG_FILTERS[flag])
    return lines


def _grouped(number):
    return number_format(number, force_grouping=True)


# The tab's rows per page.
PAGE_SIZE = 25
CURSOR_SALT = "billruns.review.cursor"
# ?cursor=last: the last page, for any sort and filter.
LAST = "last"


@dataclass
class ReviewPage:
    """One page of the Review tab: its rows in the sort's order, the number
    of its first row (``first``: 1 for the first page) among ``total`` rows
    of the filter, and the cursors of the pages beside it (None: no such
    page). ``refused`` says why a cursor was not followed."""

    rows: list
    first: int
    total: int
    next_cursor: str | None
    previous_cursor: str | None
    refused: str = ""

    @property
    def last(self) -> int:
        return self.first + len(self.rows) - 1

    @property
    def sentence(self) -> str:
        """Where the page is: "Showing rows 25,001–25,025 of 99,000"."""
        if self.is_first and self.is_last:
            return f"Showing all {_grouped(self.total)} account{'s' if self.total != 1 else ''}"
        return (
            f"Showing rows {_grouped(self.first)}–{_grouped(self.last)} of {_grouped(self.total)}"
        )

    @property
    def is_first(self) -> bool:
        return self.first <= 1

    @property
    def is_last(self) -> bool:
        return self.next_cursor is None


def _cursor(review, sort, flag, way, place, first):
    """A page link's cursor: the rows ``way`` ("after"/"before") ``place``
    in ``sort``, the first of which is row ``first``; signed, so the row
    number it carries can be shown as it is."""
    value = f"{review.pk}.{sort}.{flag}.{way}.{place}.{first}"
    return signing.Signer(salt=CURSOR_SALT).sign(value)


def _read_cursor(cursor, review, sort, flag):
    """(way, place, first) of a cursor, or None with a message for one that
    is forged or garbled; None and no message for one of another review,
    sort or filter (the clerk sorted or filtered: the first page)."""
    try:
        value = signing.Signer(salt=CURSOR_SALT).unsign(cursor)
    except signing.BadSignature:
        return None, "That page link is not valid (changed or cut short); the first page is shown."
    try:
        review_id, its_sort, its_flag, way, place, first = value.split(".")
        review_id, place, first = int(review_id), int(place), int(first)
    except ValueError:
        return None, "That page link is not valid; the first page is shown."
    if (review_id, its_sort, its_flag) != (review.pk, sort, flag) or way not in (
        "after",
        "before",
    ):
        return None, ""
    return (way, place, first), ""


def review_page(
    review, *, sort: str, flag: str, cursor: str, today: datetime.date, per_page=PAGE_SIZE
) -> ReviewPage:
    """A page of the review's lines, filtered by ``flag`` ("" for all) and
    sorted by ``sort`` (a column of SORT_PLACES, "-" before it for
    descending; anything else is by account), after or before the cursor's
    place: one indexed query whatever the page (keyset pagination over the
    places written with the lines, never OFFSET)."""
    bare = sort.removeprefix("-")
    if bare not in SORT_PLACES:
        sort, bare = "account", "account"
    place = SORT_PLACES[bare]
    descending = sort.startswith("-")
    lines = lines_flagged(review, flag, today=today)
    total = review.lines_count
    if flag == ReviewFlag.PAST_DUE:
        total = past_due_count(review, today=today)
    elif flag in FLAG_FILTERS:
        total = review.counts.get(flag, 0)
    forward, backward = (f"-{place}", place) if descending else (place, f"-{place}")
    after, before = ("lt", "gt") if descending else ("gt", "lt")
    refused = ""
    position = None
    if cursor == LAST:
        on_last = total % per_page or per_page
        rows = list(lines.order_by(backward)[:on_last])[::-1]
        first = max(1, total - len(rows) + 1)
        has_next, has_previous = False, first > 1
    else:
        if cursor:
            position, refused = _read_cursor(cursor, review, sort, flag)
        if position is None:
            rows = list(lines.order_by(forward)[: per_page + 1])
            first, has_previous = 1, False
            has_next = len(rows) > per_page
            rows = rows[:per_page]
        elif position[0] == "after":
            _, at, first = position
            rows = list(lines.filter(**{f"{place}__{after}": at}).order_by(forward)[: per_page + 1])
            has_next, has_previous = len(rows) > per_page, True
            rows = rows[:per_page]
        else:
            _, at, first = position
            rows = list(lines.filter(**{f"{place}__{before}": at}).order_by(backward)[:per_page])
            rows.reverse()
            has_next, has_previous = True, first > 1
    next_cursor = previous_cursor = None
    if rows and has_next:
        next_cursor = _cursor(
            review, sort, flag, "after", getattr(rows[-1], place), first + len(rows)
        )
    if rows and has_previous:
        previous_cursor = _cursor(
            review, sort, flag, "before", getattr(rows[0], place), max(1, first - per_page)
        )
    return ReviewPage(
        rows=rows,
        first=first,
        total=total,
        next_cursor=next_cursor,
        previous_cursor=previous_cursor,
        refused=refused,
    )


def line_flags(line, *, today: datetime.date) -> list[ReviewFlag]:
    """The flags a line raises, in ReviewFlag's order."""
    raised = []
    if line.total is None:
        raised.append(ReviewFlag.MISSING)
    if line.previous_total is None:
        raised.append(ReviewFlag.NEW)
    if line.beyond_threshold:
        raised.append(ReviewFlag.CHANGED)
    if line.total is not None and line.total == 0:
        raised.append(ReviewFlag.ZERO)
    if line.total is not None and line.total < 0:
        raised.append(ReviewFlag.NEGATIVE)
    if line.has_adjustments:
        raised.append(ReviewFlag.ADJUSTMENTS)
    if line.due_date is not None and line.due_date < today:
        raised.append(ReviewFlag.PAST_DUE)
    return raised


@dataclass
class CurrencyLine:
    currency: str
    total: Decimal
    previous_total: Decimal

    @property
    def change(self) -> Decimal:
        return self.total - self.previous_total

    @property
    def percent(self) -> str:
        return format_percent_change(self.change, self.previous_total)


def currency_lines(run, against) -> list[CurrencyLine]:
    """Per currency, the run's totals against the previous run's (both read
    from the runs' own totals: every document of either run)."""
    previous = against.totals if against is not None else {}
    return [
        CurrencyLine(
            currency,
            Decimal(run.totals.get(currency, "0.00")),
            Decimal(previous.get(currency, "0.00")),
        )
        for currency in sorted(set(run.totals) | set(previous))
    ]


@dataclass
class ReviewState:
    """What the Review tab shows: the review (None while the run is not
    settled), the run compared with, the clerk's pick refused, if any."""

    review: RunReview | None
    against: BillRun | None
    refused: str = ""
    waiting: bool = False


def review_state(run, against_number: str = "") -> ReviewState:
    if run.status not in REVIEWABLE:
        return ReviewState(review=None, against=None, waiting=True)
    refused = ""
    against = None
    if against_number:
        against = BillRun.objects.filter(number=against_number).first()
        if against is None:
            refused = f"There is no bill run {against_number}; compared with the previous run."
        elif against.id >= run.id:
            refused = (
                f"{against.number} is not earlier than {run.number}; "
                "compared with the previous run."
            )
        elif against.preview:
            refused = (
                f"{against.number} is a preview: only a real run can be compared; "
                "compared with the previous run."
            )
        elif against.status not in COMPARABLE:
            refused = (
                f"{against.number} is {against.get_status_display()}: only a Completed or Posted "
                "run can be compared; compared with the previous run."
            )
        if refused:
            against = None
    if against is not None:
        return ReviewState(review=review_of(run, against), against=against, refused=refused)
    # The review against the previous run, as found the last time nothing
    # it depends on moved: two indexed queries rather than previous_run's
    # look over the runs' accounts (tens of ms at 100,000 accounts).
    key = _runs_key(run)
    found = RunReview.objects.filter(bill_run=run, previous_key=key).select_related("against")
    found = found.first()
    if found is not None:
        return ReviewState(review=found, against=found.against, refused=refused)
    against = previous_run(run)
    the_review = review_of(run, against)
    RunReview.objects.filter(pk=the_review.pk).update(previous_key=key)
    the_review.previous_key = key
    return ReviewState(review=the_review, against=against, refused=refused)


def run_review_write(*, run_id) -> RunReview | None:
    """Write the review of a run against its previous run (the task
    billruns.tasks.write_review, queued when a run completes, a preview too,
    owner or not), so that no clerk waits for it on the tab. Idempotent: a
    review already written for the two runs as they are is kept; a run gone
    or not settled has none. Its own transaction (review_of's)."""
    run = BillRun.objects.filter(pk=run_id).first()
    if run is None:
        return None
    return review_state(run).review


# The biggest changes a summary names.
SUMMARY_CHANGES = 3


@dataclass
class ReviewSummary:
    """What the Post confirmation, the completion email and the in-app notice
    say of a run's review: the run compared with, the flags raised, the
    biggest changes."""

    against: BillRun | None
    raised: list[tuple[str, str, int]]
    biggest: list[ReviewLine]

    @property
    def text(self) -> str:
        against = f"against {self.against.number}" if self.against else "no previous run"
        if not self.raised:
            return f"Review ({against}): no flags raised."
        flags = ", ".join(f"{count} {label.lower()}" for _, label, count in self.raised)
        return f"Review ({against}): {flags}."


def review_summary(run, *, today: datetime.date) -> ReviewSummary | None:
    """The run's review against its previous run in brief, or None while the
    run is not settled."""
    state = review_state(run)
    if state.review is None:
        return None
    counts = flag_counts(state.review, today=today)
    raised = [
        (flag.value, flag.label, counts[flag.value])
        for flag in ReviewFlag
        if counts.get(flag.value)
    ]
    lines = state.review.lines.exclude(change=0)
    candidates = list(lines.order_by("pos_change")[:SUMMARY_CHANGES]) + list(
        lines.order_by("-pos_change")[:SUMMARY_CHANGES]
    )
    biggest = sorted(
        {line.pk: line for line in candidates}.values(),
        key=lambda line: (-abs(line.change), line.account_number),
    )[:SUMMARY_CHANGES]
    return ReviewSummary(against=state.against, raised=raised, biggest=biggest)
