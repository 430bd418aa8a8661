import re
import unicodedata
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils import timezone

from core.dates import validate_date_in_range
from core.fields import BytewiseCharField, ExactDecimalField
from core.uploads import FileUpload, FileUploadPart, upload_status_constraint
from customers.currencies import currency_problem
from customers.numbers import ChargeNumberField

# Money columns: imported amounts stay below 10^13 (INTERFACES.md); documents
# sum many of them, so every money column has room for 10^16. Exact on every
# database: on SQLite, integer cents (core.fields).
MONEY = {"max_digits": 18, "decimal_places": 2}
# Quantities and unit prices (BILLING_RULES.md, Customers and Usage charges):
# a charge's quantity has at most 4 places, a usage quantity and a unit price
# at most 6. Exact on every database (integer units on SQLite), 18 digits in
# all: below 10^14 for a charge's quantity, 10^12 for a usage record's (the
# import's own limit) and a tier's bound or unit price.
CHARGE_QUANTITY = {"max_digits": 18, "decimal_places": 4}
USAGE_QUANTITY = {"max_digits": 18, "decimal_places": 6}
UNIT_PRICE = {"max_digits": 18, "decimal_places": 6}


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
    # Set by a cancel-subscription change (BILLING_RULES.md, Subscription
    # changes): the subscription bills what it owes before this day and the
    # adjustments its changes cause. Empty for a subscription canceled
    # otherwise (the import's status), which bills nothing.
    cancel_date = models.DateField(
        null=True, blank=True, help_text="The effective date of its cancellation, if changed so."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["number"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=Status.values), name="subscription_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(cancel_date__isnull=True) | Q(status="Canceled"),
                name="subscription_cancel_date_only_when_canceled",
            ),
            models.UniqueConstraint(
                Lower("number"),
                name="subscription_number_unique_ignoring_case",
                violation_error_message="Another subscription has this number, ignoring case.",
            ),
        ]

    def __str__(self):
        return self.number

    def get_absolute_url(self):
        return reverse("subscriptions:detail", args=[self.number])


class ChargeType(models.TextChoices):
    RECURRING = "recurring", "Recurring"
    ONE_TIME = "one_time", "One-time"
    USAGE = "usage", "Usage"


# The types priced by amount x quantity; a usage charge is priced by its pricing.
PRICED_BY_AMOUNT = (ChargeType.RECURRING, ChargeType.ONE_TIME)


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


# A billed charge's terms (BILLING_RULES.md, Subscription changes): once its
# charged-through date is set they change only through a subscription change
# (customers.changes), never by hand (the admin refuses). Its account's bill
# cycle day is frozen with them.
BILLED_TERMS = (
    "charge_type",
    "currency",
    "amount",
    "quantity",
    "pricing",
    "period",
    "start_date",
    "end_date",
    "taxable",
)


class Charge(models.Model):
    # Unique through the constraints below (exactly, and ignoring case): a
    # plain unique index, without the LIKE index PostgreSQL adds for
    # unique=True, which the import would write for nothing.
    number = ChargeNumberField(
        max_length=64,
        validators=[validate_number],
        help_text="Leave empty to generate one (C00000001, ...).",
    )
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="charges")
    name = models.CharField(max_length=255)
    charge_type = models.CharField(max_length=16, choices=ChargeType.choices)
    amount = ExactDecimalField(
        **MONEY,
        null=True,
        blank=True,
        help_text="The unit price; negative for a credit. Empty on a usage charge.",
    )
    quantity = ExactDecimalField(
        **CHARGE_QUANTITY,
        null=True,
        blank=True,
        default=Decimal(1),
        help_text="Recurring and one-time: the price is amount x quantity. "
        "Empty on a usage charge, whose quantity is its usage.",
    )
    unit = models.CharField(
        max_length=50, blank=True, default="", help_text="Usage: the unit of measure (calls, GB)."
    )
    pricing = models.ForeignKey(
        "Pricing",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="charges",
        help_text="Usage: how a period's quantity is rated.",
    )
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
    # db_default too: rows written in SQL (COPY, tools) are taxable unless told.
    taxable = models.BooleanField(
        default=True,
        db_default=True,
        help_text="Its items count in the taxable base of the account's tax lines.",
    )

    class Meta:
        ordering = ["subscription_id", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(
                        charge_type__in=[ChargeType.RECURRING, ChargeType.USAGE],
                        period__in=BillingPeriod.values,
                    )
                    # A one-time charge has no end date, unless a change
                    # removed it before it billed: end = start, no service.
                    | (
                        Q(charge_type=ChargeType.ONE_TIME, period="")
                        & (Q(end_date__isnull=True) | Q(end_date=models.F("start_date")))
                    )
                ),
                name="charge_period_matches_type",
            ),
            # End = start: a change removed the charge from its first day on
            # (BILLING_RULES.md, Subscription changes): it never bills. The
            # import and the admin still want an end after the start.
            models.CheckConstraint(
                condition=Q(end_date__isnull=True) | Q(end_date__gte=models.F("start_date")),
                name="charge_end_not_before_start",
            ),
            # A recurring or one-time charge has a price (amount x a positive
            # quantity) and no pricing; a usage charge the reverse, and a unit.
            # Spelled with isnull: a comparison with NULL passes a CHECK.
            models.CheckConstraint(
                condition=(
                    Q(
                        charge_type__in=PRICED_BY_AMOUNT,
                        amount__isnull=False,
                        quantity__isnull=False,
                        quantity__gt=0,
                        pricing__isnull=True,
                        unit="",
                    )
                    | (
                        Q(
                            charge_type=ChargeType.USAGE,
                            amount__isnull=True,
                            quantity__isnull=True,
                            pricing__isnull=False,
                        )
                        & ~Q(unit="")
                    )
                ),
                name="charge_terms_match_type",
                violation_error_message=(
                    "A recurring or one-time charge has an amount and a quantity above 0; "
                    "a usage charge has a unit and a pricing instead."
                ),
            ),
            models.UniqueConstraint(fields=["number"], name="charge_number_unique"),
            models.UniqueConstraint(
                Lower("number"),
                name="charge_number_unique_ignoring_case",
                violation_error_message="Another charge has this number, ignoring case.",
            ),
        ]

    def __str__(self):
        return f"{self.name} ({self.subscription_id})"

    def clean(self):
        """The terms of the charge's type, each refused on its field (the
        database's check says the same in one sentence)."""
        super().clean()
        problems = {}
        if self.charge_type == ChargeType.USAGE:
            if self.amount is not None:
                problems["amount"] = "A usage charge has no amount: its pricing rates its usage."
            if self.quantity is not None:
                problems["quantity"] = "A usage charge has no quantity: its usage is its quantity."
            if not self.unit:
                problems["unit"] = "A usage charge needs its unit of measure (calls, GB)."
            if self.pricing_id is None:
                problems["pricing"] = "A usage charge needs a pricing."
        elif self.charge_type in PRICED_BY_AMOUNT:
            if self.amount is None:
                problems["amount"] = "Enter the amount (the unit price)."
            if self.quantity is None or self.quantity <= 0:
                problems["quantity"] = "The quantity must be above 0."
            if self.unit:
                problems["unit"] = "Only a usage charge has a unit of measure."
            if self.pricing_id is not None:
                problems["pricing"] = "Only a usage charge has a pricing."
        if problems:
            raise ValidationError(problems)


# --- Taxes (issue 15) ----------------------------------------------------------

# A tax rate is a percentage: 0 to 100, at most 4 places (7.25, 0.8625).
TAX_RATE = {"max_digits": 7, "decimal_places": 4}
TAX_RATE_PLACES = TAX_RATE["decimal_places"]
TAX_RATE_MAX = Decimal(100)
TAX_CODE_MAX_LENGTH = 20
TAX_CODE_PATTERN = r"^[A-Z0-9_-]{1,20}$"
TAX_CODE_RE = re.compile(TAX_CODE_PATTERN)
# How a rate is written (the command, the admin): a plain decimal, no
# exponent; its sign, places and range are tax_rate_problem's to judge.
TAX_RATE_TEXT_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
validate_tax_code = RegexValidator(
    TAX_CODE_PATTERN,
    "A tax code is 1 to 20 characters: capital letters A-Z, digits, _ and -.",
)


def tax_code_problem(value) -> str | None:
    """Why ``value`` cannot be a tax code, or None."""
    if not isinstance(value, str) or not TAX_CODE_RE.fullmatch(value):
        shown = repr(value[:40]) if isinstance(value, str) else type(value).__name__
        return f"must be 1 to 20 characters of A-Z, 0-9, _ and - (such as VAT20), not {shown}"
    return None


def tax_rate_problem(rate: Decimal) -> str | None:
    """Why ``rate`` (a Decimal) cannot be a tax rate, or None: a percent from
    0 to 100 with at most 4 decimal places, as written (20.00000 is refused
    rather than rounded)."""
    if not isinstance(rate, Decimal) or not rate.is_finite():
        return f"must be a percent such as 7.25, not {rate!r}"
    if not 0 <= rate <= TAX_RATE_MAX:
        return f"must be a percent from 0 to 100, not {rate}"
    if rate.as_tuple().exponent < -TAX_RATE_PLACES:
        return f"has at most {TAX_RATE_PLACES} decimal places, not {rate}"
    return None


def tax_rate_parse(text: str) -> Decimal:
    """The rate ``text`` writes (``"7.25"``, surrounding spaces dropped), or
    ValueError saying why it is not one."""
    written = text.strip() if isinstance(text, str) else text
    if not isinstance(written, str) or not TAX_RATE_TEXT_RE.fullmatch(written):
        shown = repr(written[:40]) if isinstance(written, str) else type(written).__name__
        raise ValueError(f"must be a percent written as a plain decimal such as 7.25, not {shown}")
    rate = Decimal(written)  # the pattern admits only plain decimals
    problem = tax_rate_problem(rate)
    if problem:
        raise ValueError(problem)
    return rate


class TaxRate(models.Model):
    """A tenant-wide tax rate (BILLING_RULES.md, Taxes). Changed only through
    ``customers.services.tax_rate_set``, which records every change."""

    code = models.CharField(
        max_length=TAX_CODE_MAX_LENGTH, unique=True, validators=[validate_tax_code]
    )
    name = models.CharField(max_length=255)
    rate = ExactDecimalField(
        **TAX_RATE,
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(100))],
        help_text="Percent, 0 to 100, at most 4 decimal places.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=Q(rate__gte=0, rate__lte=100), name="tax_rate_0_100"),
        ]

    def __str__(self):
        return f"{self.code} {self.name}"


class TaxRateChange(models.Model):
    """One change of a tax rate: who, when, its name and rate before and after
    (``old_rate`` empty when it was created)."""

    tax_rate = models.ForeignKey(TaxRate, on_delete=models.PROTECT, related_name="changes")
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    changed_at = models.DateTimeField(default=timezone.now)
    old_name = models.CharField(max_length=255, blank=True, default="")
    new_name = models.CharField(max_length=255)
    old_rate = ExactDecimalField(**TAX_RATE, null=True, blank=True)
    new_rate = ExactDecimalField(**TAX_RATE)

    class Meta:
        ordering = ["tax_rate_id", "changed_at", "id"]

    def __str__(self):
        return f"{self.tax_rate_id}: {self.old_rate} -> {self.new_rate}"


class AccountTaxCode(models.Model):
    """An account's tax code, in the order of the import's ``tax_codes``: its
    documents' tax lines follow that order."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="tax_codes")
    tax_rate = models.ForeignKey(TaxRate, on_delete=models.PROTECT, related_name="accounts")
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["account_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["account", "tax_rate"], name="account_tax_code_once"),
            models.UniqueConstraint(
                fields=["account", "position"], name="account_tax_code_position_unique"
            ),
        ]

    def __str__(self):
        return f"{self.account_id}: {self.tax_rate_id} ({self.position})"


# --- Subscription changes (issue 14) -------------------------------------------


class ChangeType(models.TextChoices):
    ADD_CHARGE = "add_charge", "Add charge"
    CHANGE_PRICE = "change_price", "Change price"
    REMOVE_CHARGE = "remove_charge", "Remove charge"
    CANCEL_SUBSCRIPTION = "cancel_subscription", "Cancel subscription"


class SubscriptionChange(models.Model):
    """One effective-dated change a clerk made to a subscription
    (BILLING_RULES.md, Subscription changes and adjustments), with who, when,
    and the values before and after. A change never edits a document: the
    next run corrects what it made wrong with adjustment items.

    Written by customers.changes, in the transaction that applies it, under
    the account's lock (a run holding that lock bills all before or all
    after it). Never edited or deleted afterwards."""

    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="changes")
    # The charge added, repriced or removed; empty for a cancellation (whose
    # removals are in ``after``).
    charge = models.ForeignKey(
        "Charge", on_delete=models.PROTECT, null=True, blank=True, related_name="changes"
    )
    change_type = models.CharField(max_length=24, choices=ChangeType.choices)
    effective_date = models.DateField(validators=[validate_date_in_range])
    before = models.JSONField(default=dict, blank=True, help_text="The terms it replaced.")
    after = models.JSONField(default=dict, blank=True, help_text="The terms it set.")
    made_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    made_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["subscription_id", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(change_type__in=ChangeType.values), name="change_type_valid"
            ),
            models.CheckConstraint(
                condition=Q(change_type="cancel_subscription") | Q(charge__isnull=False),
                name="change_names_its_charge",
            ),
        ]

    def __str__(self):
        return f"{self.get_change_type_display()} {self.effective_date}"


class ChargePrice(models.Model):
    """A price segment: from ``effective_date`` on, the charge's terms are
    these (a recurring charge's amount and quantity, a usage charge's
    pricing), until the next segment. Before its first segment a charge's
    terms are its own columns, which never change once it is billed.

    A charge's pieces are cut at each segment's effective date, and a piece
    is priced at the terms in effect on its first day (billruns.periods).
    Each segment is made by one change-price change."""

    charge = models.ForeignKey(
        "Charge", on_delete=models.PROTECT, related_name="prices", db_index=False
    )
    effective_date = models.DateField(validators=[validate_date_in_range])
    amount = ExactDecimalField(**MONEY, null=True, blank=True)
    quantity = ExactDecimalField(**CHARGE_QUANTITY, null=True, blank=True)
    pricing = models.ForeignKey(
        "Pricing", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    change = models.OneToOneField(
        SubscriptionChange, on_delete=models.PROTECT, related_name="price"
    )

    class Meta:
        ordering = ["charge_id", "effective_date"]
        # Leads with the charge: serves a chunk's read of its segments. The
        # change services take one price change a charge and day
        # (changes.rules.price_change_refusal); the engine reads segments of
        # one day in the order they were made, the later holding
        # (engine.terms_on).
        indexes = [models.Index(fields=["charge", "effective_date"], name="charge_price_day")]
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    amount__isnull=False,
                    quantity__isnull=False,
                    quantity__gt=0,
                    pricing__isnull=True,
                )
                | Q(amount__isnull=True, quantity__isnull=True, pricing__isnull=False),
                name="charge_price_terms",
                violation_error_message=(
                    "A price segment has an amount and a quantity above 0, or a pricing."
                ),
            ),
        ]

    def __str__(self):
        return f"{self.charge_id} from {self.effective_date}"


# --- Usage charges: their pricing, and the usage they bill (issue 13) ---------


class NumberCounter(models.Model):
    """Counters for numbers this app generates, on SQLite (charge numbers:
    customers.numbers). PostgreSQL uses real sequences, which never block."""

    name = models.CharField(max_length=16, primary_key=True)
    last_value = models.BigIntegerField(default=0)

    def __str__(self):
        return f"{self.name}: {self.last_value}"


class PricingModel(models.TextChoices):
    PER_UNIT = "per_unit", "Per unit"
    GRADUATED = "graduated", "Graduated"
    VOLUME = "volume", "Volume"


class Pricing(models.Model):
    """How a usage charge rates a period's quantity: a model and its tiers
    (BILLING_RULES.md, Usage charges; customers.pricing rates it).

    A value, written whole with its tiers by ``services.pricing_create`` and
    never changed afterwards: what a document billed under it stays
    explainable, and a new price is a new Pricing. A per-unit pricing has one
    tier, unbounded, without flat fee."""

    model = models.CharField(max_length=16, choices=PricingModel.choices)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(model__in=PricingModel.values), name="pricing_model_valid"
            ),
        ]

    def __str__(self):
        return f"{self.get_model_display()} pricing {self.pk}"


class PricingTier(models.Model):
    """Tier ``(from_quantity, up_to]`` of a pricing: the quantities above its
    lower bound up to and including its upper bound, none for the last tier.

    The database holds what one row can say, and one tier per lower bound and
    one unbounded tier per pricing; that the tiers follow each other from 0
    without gap and end unbounded is a property of the whole set, which
    ``services.pricing_create`` checks (``pricing_problems``) before it
    writes them all at once."""

    # The unique constraint on (pricing, from_quantity) leads with it.
    pricing = models.ForeignKey(
        Pricing, on_delete=models.CASCADE, related_name="tiers", db_index=False
    )
    from_quantity = ExactDecimalField(
        **USAGE_QUANTITY, help_text="The previous tier's bound: 0 for the first tier."
    )
    up_to = ExactDecimalField(
        **USAGE_QUANTITY, null=True, blank=True, help_text="Inclusive; empty: the last tier."
    )
    unit_price = ExactDecimalField(**UNIT_PRICE)
    flat_fee = ExactDecimalField(**MONEY, default=Decimal("0.00"))

    class Meta:
        ordering = ["pricing_id", "from_quantity"]
        constraints = [
            models.UniqueConstraint(
                fields=["pricing", "from_quantity"], name="pricing_tier_starts_once"
            ),
            models.UniqueConstraint(
                fields=["pricing"],
                condition=Q(up_to__isnull=True),
                name="pricing_one_unbounded_tier",
            ),
            models.CheckConstraint(
                condition=Q(up_to__isnull=True) | Q(up_to__gt=models.F("from_quantity")),
                name="pricing_tier_bounds_ordered",
            ),
            models.CheckConstraint(
                condition=Q(from_quantity__gte=0, unit_price__gte=0, flat_fee__gte=0),
                name="pricing_tier_not_negative",
            ),
        ]

    def __str__(self):
        upper = "" if self.up_to is None else f"{self.up_to.normalize():f}"
        return f"({self.from_quantity.normalize():f}, {upper or '∞'}]"


def record_id_problem(value: str) -> str | None:
    """Why ``value`` cannot be a usage record's id, or None: 1-100 printable
    ASCII characters (INTERFACES.md, import_usage)."""
    if not value:
        return "must not be empty"
    if len(value) > 100:
        return f"must be at most 100 characters, not {len(value)}"
    if value.isascii() and value.isprintable():
        return None
    for position, ch in enumerate(value, start=1):
        if not (ch.isascii() and ch.isprintable()):
            return f"must be printable ASCII characters (U+{ord(ch):04X} at position {position})"
    return None


def validate_record_id(value):
    problem = record_id_problem(value)
    if problem:
        raise ValidationError(f"The id {problem}.")


class UsageRecord(models.Model):
    """What a usage charge's customer used on a day, as its sender reported it.

    The sender's id is the key: the same record sent again is recognized, and
    the same id with other values refused (``invoices.usage``). Whether a
    record is billed is not stored: it is billed when a live item of its
    charge (on a document that is not canceled) covers its date, so a
    canceled run makes its usage due again without touching the records."""

    # Compared byte by byte on PostgreSQL (COLLATE "C"): cheaper to index
    # than the locale's order, and the same order for printable ASCII ids.
    # Its index of LIKE patterns is dropped (0009_usage_speed): the admin
    # searches ids exactly, and a "C" B-tree answers prefix patterns anyway.
    record_id = BytewiseCharField(
        "id", max_length=100, primary_key=True, validators=[validate_record_id]
    )
    # The index below leads with the charge and serves its joins. No foreign
    # key constraint: PostgreSQL checks it one row at a time, which took more
    # time than the rest of inserting a million records (docs/benchmarks.md).
    # What it guarded is kept otherwise (customers.usage_guard): a charge with
    # usage cannot be deleted, and the import records only charges it locked.
    charge = models.ForeignKey(
        Charge,
        on_delete=models.PROTECT,
        related_name="usage_records",
        db_index=False,
        db_constraint=False,
    )
    date = models.DateField(validators=[validate_date_in_range])
    quantity = ExactDecimalField(**USAGE_QUANTITY)
    # On PostgreSQL the column also defaults to the statement's time (customers
    # 0015): import_usage's COPY leaves it out.
    imported_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        indexes = [
            # A run sums, in one grouped query per chunk, each usage charge's
            # quantities over each due period (charge = X and date in [p, q)):
            # a range scan of this index, which holds the quantity too, so the
            # table itself is not read.
            models.Index(fields=["charge", "date", "quantity"], name="usage_charge_date_quantity"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gte=0), name="usage_quantity_not_negative"
            ),
            models.CheckConstraint(condition=~Q(record_id=""), name="usage_record_id_not_empty"),
        ]

    def __str__(self):
        return self.record_id


# --- Account files uploaded from the accounts import page --------------------------


class AccountUpload(FileUpload):
    """An ``import_accounts`` file a clerk uploaded on the accounts import
    page, imported by the task queue (``customers/account_uploads.py``; how:
    ``core/uploads.py``)."""

    class Meta(FileUpload.Meta):
        constraints = [upload_status_constraint("account_upload_status_valid")]

    def get_absolute_url(self):
        return reverse("customers:account_upload", args=[self.pk])


class AccountUploadPart(FileUploadPart):
    upload = models.ForeignKey(AccountUpload, on_delete=models.CASCADE, related_name="parts")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["upload", "index"], name="one_account_upload_part_index"
            )
        ]
