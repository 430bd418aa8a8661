import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from core.fields import ExactDecimalField
from core.money import format_percent_change
from customers.models import MONEY, TAX_RATE, Account, ChargeType, Subscription


def charge_types_label(values) -> str:
    """Excluded charge types as a clerk reads them ("One-time, Usage"), or
    "None" when every type is billed."""
    return ", ".join(ChargeType(value).label for value in sorted(values)) or "None"


class RunStatus(models.TextChoices):
    PENDING = "Pending"
    PROCESSING = "Processing"
    COMPLETED = "Completed"
    ERROR = "Error"
    POST_IN_PROGRESS = "PostInProgress", "Post in progress"
    POSTED = "Posted"
    CANCEL_IN_PROGRESS = "CancelInProgress", "Cancel in progress"
    CANCELED = "Canceled"


class Action(models.TextChoices):
    START = "start"
    FINISH = "finish"
    FAIL = "fail"
    POST = "post"
    CANCEL = "cancel"
    DELETE = "delete"
    RETRY = "retry"


# The transition table of BILLING_RULES.md: which action each status allows,
# and the only place that says so. Every service of billruns.services checks
# it under the run's lock (BillRun.allows): a refused clerk's action (post,
# cancel, delete, retry) raises BillRunActionRefused; a refused engine step
# (start, finish, fail: tasks the queue may deliver twice or late) changes
# nothing. Intermediate statuses (PostInProgress, CancelInProgress) are
# entered and left by the post and cancel services themselves. A selection
# that cannot be evaluated is a start followed by a fail (Pending ->
# Processing -> Error, in one transaction), as the rules have it.
ALLOWED_ACTIONS = {
    RunStatus.PENDING: {Action.START, Action.CANCEL},
    RunStatus.PROCESSING: {Action.FINISH, Action.FAIL},
    RunStatus.COMPLETED: {Action.POST, Action.CANCEL, Action.RETRY},
    RunStatus.ERROR: {Action.DELETE},
    RunStatus.POST_IN_PROGRESS: set(),
    RunStatus.POSTED: {Action.RETRY},
    RunStatus.CANCEL_IN_PROGRESS: set(),
    RunStatus.CANCELED: {Action.DELETE},
}

# The table for a preview run (INTERFACES.md, Previews; docs/billing-rules.md):
# it runs through the same statuses to Completed (or Error), but it is never
# posted, emailed (only a Posted run is) or retried; it may be deleted in any
# status but Processing (a chunk is writing its documents), and canceling it
# deletes it (bill_run_cancel). PostInProgress, Posted and CancelInProgress
# are never entered.
PREVIEW_ALLOWED_ACTIONS = {
    RunStatus.PENDING: {Action.START, Action.CANCEL, Action.DELETE},
    RunStatus.PROCESSING: {Action.FINISH, Action.FAIL},
    RunStatus.COMPLETED: {Action.CANCEL, Action.DELETE},
    RunStatus.ERROR: {Action.DELETE},
    RunStatus.POST_IN_PROGRESS: set(),
    RunStatus.POSTED: set(),
    RunStatus.CANCEL_IN_PROGRESS: set(),
    RunStatus.CANCELED: {Action.DELETE},
}

# How long a preview is kept: the task queue deletes older ones
# (billruns.services.previews.previews_sweep, once an hour).
PREVIEW_KEEP_DAYS = 7

# Statuses in which one of the run's documents may be posted on its own (on
# its page, in the admin): once the run is done generating and while it is
# not being canceled. A run still Processing may yet end in Error, and a run
# being canceled cancels its drafts: neither may leave a posted document
# behind. (billruns.services.posting.document_post_refusal)
DOCUMENT_POST_STATUSES = {RunStatus.COMPLETED, RunStatus.POST_IN_PROGRESS, RunStatus.POSTED}


class BillRun(models.Model):
    number = models.CharField(max_length=32, unique=True)
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.PENDING)
    target_date = models.DateField()
    invoice_date = models.DateField()

    # Selection: one account (optionally some of its subscriptions), or the
    # batches (empty: all) and bill cycle days (empty: all).
    account = models.ForeignKey(
        Account, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    subscriptions = models.ManyToManyField(
        Subscription, blank=True, related_name="+", through="BillRunSubscription"
    )
    batches = models.JSONField(default=list, blank=True)
    bill_cycle_days = models.JSONField(default=list, blank=True)

    auto_post = models.BooleanField(default=False)
    auto_email = models.BooleanField(default=False)
    no_email_for_zero_amount = models.BooleanField(default=False)
    # Charge types this run does not bill (BILLING_RULES.md, excluded charge
    # types): their pieces stay due for a later run. Sorted values of
    # customers.ChargeType; empty: every type.
    exclude_charge_types = models.JSONField(default=list, blank=True)
    # A preview (INTERFACES.md, Previews): the same engine and chunks as the
    # real run, but its documents are Preview ones (no numbers), it moves no
    # charged-through date and holds no lock a real run waits for; it is
    # never posted, emailed or retried (PREVIEW_ALLOWED_ACTIONS).
    preview = models.BooleanField(default=False)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    schedule = models.ForeignKey(
        "billruns.Schedule", on_delete=models.PROTECT, null=True, blank=True, related_name="runs"
    )
    occurrence = models.DateTimeField(
        null=True, blank=True, help_text="The schedule occurrence that made this run."
    )
    request_key = models.CharField(
        max_length=64,
        unique=True,
        null=True,
        blank=True,
        help_text="Idempotency key of the request that created the run (a double submit).",
    )
    # PROTECT: a retry's details name the run it retried (bill_run_delete
    # refuses to delete a run that was retried).
    retry_of = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="retries"
    )

    # Counters: final when the run completes. While it processes, each chunk
    # adds its accounts to accounts_processed as it commits (the progress bar
    # reads them: selectors.run_progress).
    accounts_selected = models.PositiveIntegerField(default=0)
    accounts_processed = models.PositiveIntegerField(default=0)
    accounts_failed = models.PositiveIntegerField(default=0)
    invoices_count = models.PositiveIntegerField(default=0)
    credit_memos_count = models.PositiveIntegerField(default=0)
    totals = models.JSONField(default=dict, blank=True)
    # The part of ``totals`` that is tax, per currency, counted the same way
    # (invoices' tax lines less credit memos' credits of tax): {"USD": "12.34"}.
    tax_totals = models.JSONField(default=dict, blank=True)
    has_errors = models.BooleanField(default=False)
    error_message = models.TextField(blank=True)
    last_post_error = models.TextField(blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    posted_at = models.DateTimeField(null=True, blank=True)
    posted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    canceled_at = models.DateTimeField(null=True, blank=True)
    canceled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # Set in the transaction that announces the run's end (Completed, after
    # any auto-post, or Error: billruns.signals.bill_run_finished); the
    # sweeper announces a run that ended unannounced.
    announced_at = models.DateTimeField(null=True, blank=True)
    # When a worker last took up a step (start, post, cancel); the sweeper
    # takes up a run whose step is older than its timeout.
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=RunStatus.values), name="billrun_status_valid"
            ),
            # One run per schedule occurrence, however many clusters fire it.
            models.UniqueConstraint(
                fields=["schedule", "occurrence"],
                condition=Q(schedule__isnull=False),
                name="one_run_per_schedule_occurrence",
            ),
            # One live retry per run: two clerks retrying at once make one run.
            models.UniqueConstraint(
                fields=["retry_of"],
                condition=Q(retry_of__isnull=False) & ~Q(status__in=["Canceled", "Error"]),
                name="one_live_retry_per_run",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "-id"], name="billrun_status"),
            models.Index(fields=["target_date"], name="billrun_target_date"),
            models.Index(fields=["created_at"], name="billrun_created_at"),
            models.Index(
                fields=["created_at"], condition=Q(preview=True), name="billrun_preview_created"
            ),
        ]
        permissions = [
            ("post_billrun", "Can post bill runs"),
            ("cancel_billrun", "Can cancel bill runs"),
            ("retry_billrun", "Can retry bill runs"),
            ("email_billrun", "Can email bill run documents"),
        ]

    def __str__(self):
        return self.number

    def get_absolute_url(self):
        return reverse("billruns:detail", args=[self.number])

    def allows(self, action):
        table = PREVIEW_ALLOWED_ACTIONS if self.preview else ALLOWED_ACTIONS
        return action in table[RunStatus(self.status)]

    @property
    def exclude_charge_types_label(self):
        return charge_types_label(self.exclude_charge_types)

    @property
    def selection_label(self):
        """The selection in words, for the command and the admin (the pages
        link its numbers: billruns.tables.selection_html)."""
        if self.retry_of_id:
            failed = self.retry_of.accounts_failed
            return f"Retry of {self.retry_of.number}: {failed} failed account{'s' * (failed != 1)}"
        if self.account_id:
            subs = list(self.subscriptions.values_list("number", flat=True))
            label = f"Account {self.account.number}"
            return f"{label}, subscriptions {', '.join(subs)}" if subs else label
        batches = ", ".join(f"Batch{b}" for b in self.batches) if self.batches else "All batches"
        days = ", ".join(str(d) for d in self.bill_cycle_days) if self.bill_cycle_days else "all"
        return f"{batches}; bill cycle day {days}"


class BillRunSubscription(models.Model):
    """One subscription of a run's selection (``BillRun.subscriptions``).

    The table Django made for the many-to-many field, declared so that a
    subscription a run selected cannot be deleted (PROTECT; Django's own
    table deletes the row, and the run's details would then name fewer
    subscriptions than it billed)."""

    billrun = models.ForeignKey(BillRun, on_delete=models.CASCADE)
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="+")

    class Meta:
        db_table = "billruns_billrun_subscriptions"
        unique_together = [("billrun", "subscription")]

    def __str__(self):
        return f"{self.billrun_id}: {self.subscription_id}"


class BillRunTaxRate(models.Model):
    """The run's snapshot of one tenant tax rate (BILLING_RULES.md, Taxes: a
    run uses the rates in force when it starts), written when the run starts
    generating (``services.execution.bill_run_start``): a rate changed while
    the run is Processing, or after, never alters what it computes."""

    # The unique constraint below leads with the run: it serves the join.
    bill_run = models.ForeignKey(
        BillRun, on_delete=models.CASCADE, related_name="tax_rates", db_index=False
    )
    code = models.CharField(max_length=20)
    name = models.CharField(max_length=255)
    rate = ExactDecimalField(**TAX_RATE, help_text="Percent.")

    class Meta:
        ordering = ["bill_run", "code"]
        constraints = [
            models.UniqueConstraint(fields=["bill_run", "code"], name="one_tax_rate_per_run_code")
        ]

    def __str__(self):
        return f"{self.code} {self.rate}%"


class ChunkStatus(models.TextChoices):
    PENDING = "pending"
    DONE = "done"


class BillRunChunk(models.Model):
    """A slice of a run's accounts, processed by one task in one transaction.

    The chunk is marked done in the same transaction that writes its
    documents, so a redelivered chunk task sees it done and does nothing.
    """

    bill_run = models.ForeignKey(BillRun, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    account_ids = models.JSONField()
    account_count = models.PositiveIntegerField()
    status = models.CharField(
        max_length=16, choices=ChunkStatus.choices, default=ChunkStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    leased_at = models.DateTimeField(null=True, blank=True)  # when its task was last queued
    # The worker that took the chunk (holder) renews heartbeat_at every few
    # seconds while it works; the sweeper takes up a chunk whose heartbeat
    # stopped (billruns.leases).
    holder = models.CharField(max_length=160, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cluster = models.CharField(max_length=128, blank=True, help_text="Who processed it.")
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["bill_run_id", "index"]
        constraints = [
            models.UniqueConstraint(fields=["bill_run", "index"], name="one_chunk_per_index"),
        ]
        indexes = [models.Index(fields=["bill_run", "status"], name="chunk_run_status")]

    def __str__(self):
        return f"chunk {self.index + 1} of run {self.bill_run_id}"


class BillRunFailure(models.Model):
    bill_run = models.ForeignKey(BillRun, on_delete=models.CASCADE, related_name="failures")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="bill_run_failures")
    subscription = models.ForeignKey(
        Subscription, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reason = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return self.reason


class BillRunEvent(models.Model):
    """One status change of a run: from, to, who, when."""

    bill_run = models.ForeignKey(BillRun, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    at = models.DateTimeField()
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self):
        return f"{self.from_status or 'new'} -> {self.to_status}"

    @property
    def from_label(self):
        return RunStatus(self.from_status).label if self.from_status else ""

    @property
    def to_label(self):
        return RunStatus(self.to_status).label


class Schedule(models.Model):
    """A recurring bill run.

    Occurrences are computed in the schedule's own time zone by
    ``billruns.schedules.next_occurrences`` and the next one is stored in
    UTC (``next_run_at``), indexed so the every-minute firing task finds the
    due schedules with one range scan. Write through the services in
    ``billruns.schedules``: they keep ``next_run_at`` in step with the rules.
    """

    class Repeats(models.TextChoices):
        ONCE = "once", "Once"
        DAILY = "daily", "Daily"
        WEEKLY = "weekly", "Weekly"
        MONTHLY = "monthly", "Monthly"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        CANCELED = "canceled", "Canceled"

    # Bill cycle day of the runs: "all", "1".."31", or the run's own day.
    BCD_ALL = "all"
    BCD_AS_RUN_DAY = "run_day"

    name = models.CharField(max_length=200, unique=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)

    repeats = models.CharField(max_length=16, choices=Repeats.choices, default=Repeats.MONTHLY)
    # Weekly: days of the week, 0 = Monday ... 6 = Sunday (date.weekday()).
    weekdays = models.JSONField(default=list, blank=True)
    # Monthly: a day 1-31 (29-31 fall on the last day of shorter months), or
    # the last day of every month.
    day_of_month = models.PositiveSmallIntegerField(default=1, null=True, blank=True)
    last_day_of_month = models.BooleanField(default=False)
    run_time = models.TimeField(default=datetime.time(6, 0))
    time_zone = models.CharField(max_length=64, default="UTC", help_text="An IANA time zone.")
    start_date = models.DateField(default=timezone.localdate)
    end_date = models.DateField(null=True, blank=True)

    # Dates of each run, counted in days from the run's local date.
    target_date_offset_days = models.IntegerField(default=0)
    invoice_date_offset_days = models.IntegerField(default=0)

    # Selection of each run: batches (empty: all) and one bill cycle day.
    batches = models.JSONField(default=list, blank=True)
    bill_cycle_day = models.CharField(max_length=8, default=BCD_ALL)
    exclude_charge_types = models.JSONField(
        default=list, blank=True, help_text="Charge types its runs do not bill."
    )
    auto_post = models.BooleanField(default=False)

    next_run_at = models.DateTimeField(null=True, blank=True, help_text="UTC; empty: no more runs.")
    # Occurrences canceled one by one (ISO 8601 UTC), never fired.
    skipped_occurrences = models.JSONField(default=list, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["active", "paused", "canceled"]),
                name="schedule_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(day_of_month__isnull=True)
                | Q(day_of_month__gte=1, day_of_month__lte=31),
                name="schedule_day_of_month_1_31",
            ),
        ]
        indexes = [models.Index(fields=["status", "next_run_at"], name="schedule_due")]

    def __str__(self):
        return self.name

    @property
    def exclude_charge_types_label(self):
        return charge_types_label(self.exclude_charge_types)


class ScheduleEvent(models.Model):
    """One entry of a schedule's history: what happened, who did it, when.

    Written by the services in ``billruns.schedules`` in the transaction of
    the change itself, so the history has an entry for every change and no
    entry for a change that was rolled back.
    """

    class Kind(models.TextChoices):
        CREATED = "created", "Created"
        CHANGED = "changed", "Changed"
        PAUSED = "paused", "Paused"
        RESUMED = "resumed", "Resumed"
        CANCELED = "canceled", "Canceled"
        OCCURRENCE_CANCELED = "occurrence_canceled", "Run canceled"
        FIRED = "fired", "Run made"
        REFUSED = "refused", "Run refused"

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    at = models.DateTimeField(default=timezone.now)
    detail = models.TextField(blank=True)
    bill_run = models.ForeignKey(
        BillRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["schedule", "-at"], name="schedule_event_history")]
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    kind__in=[
                        "created",
                        "changed",
                        "paused",
                        "resumed",
                        "canceled",
                        "occurrence_canceled",
                        "fired",
                        "refused",
                    ]
                ),
                name="schedule_event_kind_valid",
            ),
        ]

    def __str__(self):
        return f"{self.schedule}: {self.get_kind_display()}"


class ReviewFlag(models.TextChoices):
    """What the Review tab flags on an account (issue 17; docs/billing-rules.md)."""

    MISSING = "missing", "Not billed this time"
    NEW = "new", "Billed for the first time"
    CHANGED = "changed", "Changed beyond the threshold"
    ZERO = "zero", "Zero total"
    NEGATIVE = "negative", "Negative total (credit)"
    ADJUSTMENTS = "adjustments", "Has adjustments"
    PAST_DUE = "past_due", "Due date already passed"


class RunReview(models.Model):
    """A run compared with an earlier one, account by account: the Review
    tab's rows, computed once by one INSERT ... SELECT (billruns.review) for
    the pair and for ``stamp``, the two runs' last status events, so a run
    canceled or completed again since is compared afresh."""

    bill_run = models.ForeignKey(BillRun, on_delete=models.CASCADE, related_name="reviews")
    against = models.ForeignKey(
        BillRun, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    stamp = models.CharField(max_length=64)
    threshold_percent = models.PositiveIntegerField()
    # Lines per flag when computed; past_due depends on the day it is read,
    # so its count is read from ``due_dates``, the lines per due date.
    counts = models.JSONField(default=dict)
    due_dates = models.JSONField(default=dict)
    lines_count = models.PositiveIntegerField(default=0)
    # Set on the review against the run's previous run: the runs' state it
    # was found in (billruns.review._runs_key), so the tab need not look
    # for the previous run again while that state holds.
    previous_key = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["bill_run", "against", "stamp"],
                condition=Q(against__isnull=False),
                name="one_review_per_pair_and_stamp",
            ),
            models.UniqueConstraint(
                fields=["bill_run", "stamp"],
                condition=Q(against__isnull=True),
                name="one_first_review_per_stamp",
            ),
        ]

    def __str__(self):
        return f"review of run {self.bill_run_id} against {self.against_id}"


# The places of a review line, one per sort order of the Review tab.
REVIEW_PLACES = (
    "pos_account",
    "pos_currency",
    "pos_previous",
    "pos_total",
    "pos_change",
    "pos_percent",
)


class ReviewLine(models.Model):
    """One account either run billed: its totals (signed: credit memos
    negative) this time and last time; null where that run did not bill it."""

    review = models.ForeignKey(RunReview, on_delete=models.CASCADE, related_name="lines")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    account_number = models.CharField(max_length=64)
    currency = models.CharField(max_length=3)
    total = ExactDecimalField(**MONEY, null=True)
    previous_total = ExactDecimalField(**MONEY, null=True)
    change = ExactDecimalField(**MONEY)
    # For sorting only (a float); pages show the exact percent (billruns.review).
    percent = models.FloatField(null=True)
    beyond_threshold = models.BooleanField()
    has_adjustments = models.BooleanField()
    due_date = models.DateField(null=True)
    # Each sort order of the tab as the line's place in it, 1 to the number
    # of lines, written with the lines (the sort key, nulls last, then the
    # account number): a page is the next rows after a place (keyset
    # pagination, billruns.review.review_page), and its first row's number
    # is its place.
    pos_account = models.PositiveIntegerField()
    pos_currency = models.PositiveIntegerField()
    pos_previous = models.PositiveIntegerField()
    pos_total = models.PositiveIntegerField()
    pos_change = models.PositiveIntegerField()
    pos_percent = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["review", "account"], name="one_review_line_per_account"
            ),
            *(
                models.UniqueConstraint(fields=["review", place], name=f"review_line_{place}")
                for place in REVIEW_PLACES
            ),
        ]
        # A filter by flag is an indexed query: each flag's lines by account
        # (a rare flag read through its own index; a common one is found as
        # quickly walking any sort order). past_due is read by due date.
        indexes = [
            *(
                models.Index(
                    fields=["review", "pos_account"],
                    condition=condition,
                    name=f"review_line_flag_{flag}",
                )
                for flag, condition in (
                    ("missing", Q(total__isnull=True)),
                    ("new", Q(previous_total__isnull=True)),
                    ("changed", Q(beyond_threshold=True)),
                    ("zero", Q(total=0)),
                    ("negative", Q(total__lt=0)),
                    ("adjusted", Q(has_adjustments=True)),
                )
            ),
            models.Index(fields=["review", "due_date"], name="review_line_due"),
        ]

    def __str__(self):
        return f"{self.account_number}: {self.previous_total} -> {self.total}"

    @property
    def percent_change(self) -> str:
        return format_percent_change(self.change, self.previous_total)
