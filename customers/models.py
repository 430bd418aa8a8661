import unicodedata

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from core.dates import validate_date_in_range
from core.fields import ExactDecimalField
from customers.currencies import currency_problem

# Money columns: imported amounts stay below 10^13 (INTERFACES.md); documents
# sum many of them, so every money column has room for 10^16. Exact on every
# database: on SQLite, integer cents (core.fields).
MONEY = {"max_digits": 18, "decimal_places": 2}


def validate_currency(value):
    problem = currency_problem(value)
    if problem:
        raise ValidationError(problem)


# Characters a number must not contain although they print as nothing or as
# a space: controls (Cc), format characters such as zero-width spaces and
# bidirectional controls (Cf), and separators (Zs, Zl, Zp: the no-break
# space). Two numbers that look the same would name two customers.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


def number_problem(value):
    """Why ``value`` cannot be an account or subscription number, or None.

    A number is a part of its page's URL (``/billing/accounts/<number>/``):
    a slash would make every page that links to it fail to build the link,
    "." and ".." would lead elsewhere, and a backslash is read differently by
    browsers and spreadsheets. A clerk types a number to bill its customer,
    so what the number shows must be all it is: no space, control or
    invisible character."""
    if value in {".", ".."}:
        return "must not be . or .."
    if any(ch in "/\\" for ch in value):
        return "must not contain a slash or a backslash"
    if value.isascii() and value.isprintable() and " " not in value:
        # The common case, checked at C speed: an import checks 200,000 numbers.
        return None
    for position, ch in enumerate(value, start=1):
        if ch.isspace() or unicodedata.category(ch) in INVISIBLE_CATEGORIES:
            return (
                "must not contain spaces, control or invisible characters "
                f"(U+{ord(ch):04X} at position {position})"
            )
    return None


def validate_number(value):
    problem = number_problem(value)
    if problem:
        raise ValidationError(f"The number {problem}.")


class Status(models.TextChoices):
    ACTIVE = "Active"
    CANCELED = "Canceled"


class Account(models.Model):
    number = models.CharField(max_length=64, unique=True, validators=[validate_number])
    name = models.CharField(max_length=255)
    bill_to_email = models.EmailField(
        blank=True, help_text="Bill-to contact. Without one, the account fails in bill runs."
    )
    currency = models.CharField(max_length=3, validators=[validate_currency])
    bill_cycle_day = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(31)]
    )
    batch = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(50)]
    )
    payment_term_days = models.PositiveSmallIntegerField(
        default=30, validators=[MaxValueValidator(365)]
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["number"]
        constraints = [
            models.CheckConstraint(
                condition=Q(bill_cycle_day__gte=1, bill_cycle_day__lte=31),
                name="account_bill_cycle_day_1_31",
            ),
            models.CheckConstraint(
                condition=Q(batch__gte=1, batch__lte=50), name="account_batch_1_50"
            ),
            models.CheckConstraint(
                condition=Q(payment_term_days__gte=0, payment_term_days__lte=365),
                name="account_payment_term_0_365",
            ),
            models.CheckConstraint(
                condition=Q(status__in=Status.values), name="account_status_valid"
            ),
            # Numbers are compared exactly, so two that differ only in case
            # would be two customers a clerk cannot tell apart.
            models.UniqueConstraint(
                Lower("number"),
                name="account_number_unique_ignoring_case",
                violation_error_message="Another account has this number, ignoring case.",
            ),
        ]
        indexes = [
            # Bill run selection: active accounts of some batches and BCDs.
            models.Index(fields=["status", "batch", "bill_cycle_day"], name="account_selection"),
        ]

    def __str__(self):
        return f"{self.number} {self.name}"

    @property
    def batch_label(self):
        return f"Batch{self.batch}"


class Subscription(models.Model):
    number = models.CharField(max_length=64, unique=True, validators=[validate_number])
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    start_date = models.DateField(validators=[validate_date_in_range])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["number"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=Status.values), name="subscription_status_valid"
            ),
            models.UniqueConstraint(
                Lower("number"),
                name="subscription_number_unique_ignoring_case",
                violation_error_message="Another subscription has this number, ignoring case.",
            ),
        ]

    def __str__(self):
        return self.number


class ChargeType(models.TextChoices):
    RECURRING = "recurring", "Recurring"
    ONE_TIME = "one_time", "One-time"


class BillingPeriod(models.TextChoices):
    MONTH = "month", "Month"
    QUARTER = "quarter", "Quarter"
    SEMI_ANNUAL = "semi_annual", "Semi-annual"
    ANNUAL = "annual", "Annual"


PERIOD_MONTHS = {
    BillingPeriod.MONTH: 1,
    BillingPeriod.QUARTER: 3,
    BillingPeriod.SEMI_ANNUAL: 6,
    BillingPeriod.ANNUAL: 12,
}


class Charge(models.Model):
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="charges")
    name = models.CharField(max_length=255)
    charge_type = models.CharField(max_length=16, choices=ChargeType.choices)
    amount = ExactDecimalField(**MONEY, help_text="Negative for a credit.")
    currency = models.CharField(max_length=3, validators=[validate_currency])
    period = models.CharField(max_length=16, choices=BillingPeriod.choices, blank=True, default="")
    start_date = models.DateField(validators=[validate_date_in_range])
    end_date = models.DateField(
        null=True, blank=True, help_text="Exclusive.", validators=[validate_date_in_range]
    )
    charged_through_date = models.DateField(
        null=True,
        blank=True,
        help_text="End (exclusive) of the last billed period; empty until first billed.",
    )

    class Meta:
        ordering = ["subscription_id", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(charge_type=ChargeType.RECURRING, period__in=BillingPeriod.values)
                    | Q(charge_type=ChargeType.ONE_TIME, period="", end_date__isnull=True)
                ),
                name="charge_period_matches_type",
            ),
            models.CheckConstraint(
                condition=Q(end_date__isnull=True) | Q(end_date__gt=models.F("start_date")),
                name="charge_end_after_start",
            ),
        ]

    def __str__(self):
        return f"{self.name} ({self.subscription_id})"

    @property
    def period_months(self):
        return PERIOD_MONTHS.get(self.period)
