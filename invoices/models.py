from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse

from core.deliveries import DeliveryStatus
from core.fields import ExactDecimalField
from core.uploads import FileUpload, FileUploadPart, upload_status_constraint
from customers.models import MONEY, TAX_RATE, USAGE_QUANTITY, Account, Charge, Subscription


class TenantSettings(models.Model):
    """The tenant-wide billing switches: one row, id 1."""

    advanced_ar_settlement = models.BooleanField(
        "Advanced AR Settlement",
        default=False,
        help_text=(
            "On: a bill run makes a credit memo for an account whose net total is negative, "
            "and posting a run posts its credit memos. Off: a negative invoice instead."
        ),
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "tenant settings"
        verbose_name_plural = "tenant settings"
        constraints = [models.CheckConstraint(condition=Q(id=1), name="tenant_settings_singleton")]

    def __str__(self):
        return "Tenant settings"

    @classmethod
    def load(cls):
        """The row, created if missing: for the pages and commands that edit it."""
        obj, _ = cls.objects.get_or_create(id=1)
        return obj

    @classmethod
    def current(cls):
        """The settings in force, without writing: the defaults when the row
        does not exist yet. Bill runs read it inside long transactions, where
        creating the row would make every concurrent chunk wait for the first."""
        return cls.objects.filter(id=1).first() or cls(id=1)


class NumberSequence(models.Model):
    """Counters for document and run numbers on databases without sequences.

    On PostgreSQL the numbers come from real sequences (see invoices.sequences),
    which never block and never repeat; this table serves SQLite, where one
    writer at a time makes an UPDATE ... RETURNING just as safe.
    """

    name = models.CharField(max_length=16, primary_key=True)
    last_value = models.BigIntegerField(default=0)

    def __str__(self):
        return f"{self.name}: {self.last_value}"


class DocumentType(models.TextChoices):
    INVOICE = "invoice", "Invoice"
    CREDIT_MEMO = "credit_memo", "Credit memo"


class DocumentStatus(models.TextChoices):
    DRAFT = "Draft"
    POSTED = "Posted"
    CANCELED = "Canceled"
    # A preview run's document (INTERFACES.md, Previews): no number, never
    # posted, emailed or paid, and out of every list, total and export of
    # real documents (RealDocumentManager).
    PREVIEW = "Preview"


class RealDocumentManager(models.Manager):
    """The default manager: real documents only, previews left out.

    A preview run's documents live in the same table (so that the engine
    writes them with the same code, and the run's tabs and review read them
    with the same queries), but nothing outside their own run may see them:
    every list, export, total, admin page, account page and guard goes
    through this manager (or through a related manager, which Django builds
    from it: ``account.documents``), so new code excludes previews without
    thinking of them. The few reads of one run's own documents, preview or
    not, name ``Document.all_objects`` (docs/billing-rules.md, Previews)."""

    def get_queryset(self):
        return super().get_queryset().exclude(status=DocumentStatus.PREVIEW)


class Document(models.Model):
    """An invoice or a credit memo; one table, so that one partial unique index
    over their items guards against billing a period twice."""

    document_type = models.CharField(max_length=16, choices=DocumentType.choices)
    # Unique through the constraint below: a plain unique index, without the
    # second (LIKE) index PostgreSQL gets for unique=True, which every posting
    # would have to update too.
    # Null on a preview's document only (check document_number_unless_preview):
    # a preview takes no number from the sequences.
    number = models.CharField(max_length=32, null=True, blank=True)
    # Both foreign keys lead composite indexes below, which serve their joins
    # too; a separate index each would only slow down generating and posting.
    account = models.ForeignKey(
        Account, on_delete=models.PROTECT, related_name="documents", db_index=False
    )
    # PROTECT: a run is deleted only by bill_run_delete, which deletes its
    # canceled documents first and refuses a run holding any other one.
    bill_run = models.ForeignKey(
        "billruns.BillRun",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="documents",
        db_index=False,
    )
    status = models.CharField(
        max_length=16, choices=DocumentStatus.choices, default=DocumentStatus.DRAFT
    )
    currency = models.CharField(max_length=3)
    # Taxes (issue 15): the subtotal is the sum of the items, signed as
    # computed; ``amount`` is the total, subtotal plus the tax lines
    # (``taxes``), its absolute value for a credit memo.
    subtotal = ExactDecimalField(
        **MONEY, default=Decimal("0.00"), help_text="The sum of the items, signed as computed."
    )
    amount = ExactDecimalField(
        **MONEY,
        help_text="The total, subtotal plus taxes. Invoice: may be negative. "
        "Credit memo: the credit.",
    )
    balance = ExactDecimalField(**MONEY, help_text="Open balance.")
    invoice_date = models.DateField()
    due_date = models.DateField()
    created_at = models.DateTimeField(auto_now_add=True)
    posted_at = models.DateTimeField(null=True, blank=True)
    # No index on who posted or canceled: nothing searches by it, and every
    # posting would pay for one. PROTECT, as every user a document or a run
    # names: deleting the user would erase who did it (deactivate instead).
    posted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    canceled_at = models.DateTimeField(null=True, blank=True)
    canceled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )

    # Previews included: only for reads of one run's own documents.
    all_objects = models.Manager()
    objects = RealDocumentManager()

    class Meta:
        ordering = ["-id"]
        default_manager_name = "objects"
        base_manager_name = "all_objects"
        constraints = [
            models.UniqueConstraint(fields=["number"], name="document_number_unique"),
            models.CheckConstraint(
                condition=Q(status=DocumentStatus.PREVIEW, number__isnull=True)
                | (~Q(status=DocumentStatus.PREVIEW) & Q(number__isnull=False)),
                name="document_number_unless_preview",
            ),
            models.CheckConstraint(
                condition=Q(document_type__in=DocumentType.values), name="document_type_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=DocumentStatus.values), name="document_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(document_type=DocumentType.CREDIT_MEMO) | Q(amount__gte=0),
                name="credit_memo_amount_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(status=DocumentStatus.POSTED) | Q(posted_at__isnull=True),
                name="document_posted_at_only_when_posted",
            ),
        ]
        indexes = [
            # Posting and counting a run's documents by status and type.
            models.Index(
                fields=["bill_run", "status", "document_type"], name="document_run_status"
            ),
            # A run's Invoices and Credit Memos tabs, newest first, a page at a time.
            models.Index(fields=["bill_run", "document_type", "-id"], name="document_run_type"),
            # The API's pages of a run's documents, by id (keyset: WHERE
            # bill_run = r AND id > cursor ORDER BY id): without it the last
            # page reads on through every later run's documents looking for
            # one more row (docs/benchmarks.md, session 8).
            models.Index(fields=["bill_run", "id"], name="document_run_id"),
            models.Index(fields=["account", "invoice_date"], name="document_account_date"),
            models.Index(fields=["invoice_date"], name="document_invoice_date"),
            models.Index(fields=["status", "document_type"], name="document_status_type"),
        ]
        permissions = [("post_document", "Can post invoices and credit memos")]

    def __str__(self):
        return self.number or f"Preview {self.get_document_type_display().lower()} {self.pk}"

    def get_absolute_url(self):
        # A preview's document has no page of its own (it has no number).
        return reverse("invoices:detail", args=[self.number]) if self.number else ""

    @property
    def is_preview(self):
        return self.status == DocumentStatus.PREVIEW

    @property
    def is_invoice(self):
        return self.document_type == DocumentType.INVOICE

    @property
    def is_paid(self):
        return (
            self.is_invoice
            and self.status == DocumentStatus.POSTED
            and self.balance == Decimal("0")
            and self.amount > 0
        )

    @property
    def shown_subtotal(self):
        """The subtotal as the document shows it: a credit memo's as a
        positive credit, as its total."""
        return self.subtotal if self.is_invoice else -self.subtotal

    @property
    def shown_tax(self):
        """The sum of the tax lines as the document shows them (a credit
        memo's as a credit): the total less the subtotal, no query."""
        return self.amount - self.shown_subtotal

    @property
    def display_status(self):
        return "Paid" if self.is_paid else self.status


class InvoiceManager(RealDocumentManager):
    def get_queryset(self):
        return super().get_queryset().filter(document_type=DocumentType.INVOICE)


class CreditMemoManager(RealDocumentManager):
    def get_queryset(self):
        return super().get_queryset().filter(document_type=DocumentType.CREDIT_MEMO)


class Invoice(Document):
    objects = InvoiceManager()

    class Meta:
        proxy = True


class CreditMemo(Document):
    objects = CreditMemoManager()

    class Meta:
        proxy = True
        verbose_name = "credit memo"


class ItemKind(models.TextChoices):
    CHARGE = "charge", "Charge"
    ADJUSTMENT = "adjustment", "Adjustment"


def _day(day, *, year: bool) -> str:
    return f"{day.day} {day:%b}" + (f" {day.year}" if year else "")


def service_days(start, end) -> str:
    """An item's service period for a reader, its last day inclusive:
    ``11 Mar – 31 Mar 2026``, ``11 Dec 2025 – 10 Jan 2026``, ``11 Mar 2026``."""
    if start == end:
        return _day(start, year=True)
    return f"{_day(start, year=start.year != end.year)} – {_day(end, year=True)}"


def adjustment_description(*, charge_name: str, unit: str, start, end, amount) -> str:
    """What an adjustment item says on documents, run tabs and PDFs, in the
    spirit of Stripe's proration lines (the rules leave the wording open):
    a credit for service no longer billed on the item it corrects is
    "Unused time on Pro plan, 11 Mar – 31 Mar 2026"; a charge back (the
    corrected item was itself a credit) "Remaining time on ..."; a usage
    item's correction (its usage before the change rated again) "Usage on
    ... rated again". ``start``..``end``: the service it corrects, ``end``
    inclusive."""
    period = service_days(start, end)
    if unit:
        return f"Usage on {charge_name} rated again, {period}"
    if amount > 0:
        return f"Remaining time on {charge_name}, {period}"
    return f"Unused time on {charge_name}, {period}"


class RealItemManager(models.Manager):
    """The default manager of items: a preview's items left out (as
    RealDocumentManager), so that a charge's items (``charge.items``), the
    live items a run reads, the usage import's late check and the cancel
    guard never see them."""

    def get_queryset(self):
        return super().get_queryset().filter(preview=False)


class DocumentItem(models.Model):
    """One billed service period of one charge, on an invoice or credit memo.

    ``document_canceled`` mirrors the document's status so that the partial
    unique index below can say: among documents that are not canceled, a
    charge's period starting on a given day is billed at most once.
    """

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="items")
    # Items are the largest table and a run writes hundreds of thousands of
    # them: the charge is found through the partial unique index below (its
    # leading column), and the subscription is a copy of the charge's, kept
    # for display, so neither gets an index of its own. Both are real foreign
    # keys with PROTECT: what a Posted document shows must never be deleted
    # from under it (issue 11: a subscription deleted in the admin left its
    # invoice with "No items."). The subscription's check costs one primary
    # key lookup per written row; without an index on it, deleting a
    # subscription (rare, and refused once billed) scans the items once.
    charge = models.ForeignKey(
        Charge, on_delete=models.PROTECT, related_name="items", db_index=False
    )
    subscription = models.ForeignKey(
        Subscription, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    charge_name = models.CharField(max_length=255)
    service_start = models.DateField()
    service_end = models.DateField(help_text="Inclusive: the period's last day.")
    # What the amount is made of (issue 13), copied from the charge when the
    # item was billed, so that the document stays explainable when the charge
    # changes later. A recurring or one-time item: the charge's unit price
    # and quantity (amount = unit price x quantity, prorated for a cut
    # piece); a usage item: the piece's summed usage, its unit, and the
    # rating that priced it.
    quantity = ExactDecimalField(
        **USAGE_QUANTITY,
        null=True,
        blank=True,
        help_text="The charge's quantity; for usage, the period's summed usage.",
    )
    unit = models.CharField(max_length=50, blank=True, default="")
    unit_price = ExactDecimalField(
        **MONEY, null=True, blank=True, help_text="Recurring and one-time: the charge's amount."
    )
    rating = models.TextField(
        blank=True,
        default="",
        help_text="How the amount was computed, as the clerk reads it "
        "(12,500 calls: 1,000 × 0 + 9,000 × 0.002 + 5.00 + 2,500 × 0.001 = 25.50).",
    )
    amount = ExactDecimalField(**MONEY, help_text="Signed, as computed.")
    previous_charged_through = models.DateField(
        null=True,
        blank=True,
        help_text="The charge's charged-through date before this item was billed; "
        "canceling the document restores it.",
    )
    document_canceled = models.BooleanField(default=False)
    # Mirrors the document's Preview status, as document_canceled mirrors
    # Canceled: a preview's items stay out of both partial unique indexes
    # below, so a preview never collides with (nor, on PostgreSQL, waits
    # on or blocks) a real run's items for the same pieces.
    preview = models.BooleanField(default=False)
    # Subscription changes (issue 14; BILLING_RULES.md, Subscription changes
    # and adjustments): a charge item bills one piece; an adjustment item
    # corrects one charge item (``adjusts``) from the day it went stale, its
    # service period [r, c). A charge item an adjustment reverses from its
    # very first day covers nothing: ``fully_reversed``, kept by the run that
    # writes the adjustment and cleared when that run is canceled, so that
    # the piece can be billed again on a new item with the same start.
    kind = models.CharField(max_length=16, choices=ItemKind.choices, default=ItemKind.CHARGE)
    adjusts = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="adjustments",
        db_index=False,
    )
    fully_reversed = models.BooleanField(default=False)
    # A usage item's pricing, so that a later price change can tell whether
    # it still matches (and re-rate the records it billed).
    pricing = models.ForeignKey(
        "customers.Pricing",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )

    # Previews included: only for reads of one run's own items.
    all_objects = models.Manager()
    objects = RealItemManager()

    class Meta:
        ordering = ["id"]
        default_manager_name = "objects"
        base_manager_name = "all_objects"
        constraints = [
            # No piece billed twice: among live items, one charge item per
            # charge and service start that an adjustment has not reversed
            # whole; and each charge item corrected by at most one live
            # adjustment. A preview's items are not live.
            models.UniqueConstraint(
                fields=["charge", "service_start"],
                condition=Q(
                    document_canceled=False, kind="charge", fully_reversed=False, preview=False
                ),
                name="one_live_charge_item_per_start",
            ),
            models.UniqueConstraint(
                fields=["adjusts"],
                condition=Q(document_canceled=False, adjusts__isnull=False, preview=False),
                name="one_live_adjustment_per_item",
            ),
            models.CheckConstraint(
                condition=Q(kind="charge", adjusts__isnull=True)
                | Q(kind="adjustment", adjusts__isnull=False, fully_reversed=False),
                name="item_kind_matches_adjusts",
            ),
            models.CheckConstraint(
                condition=Q(service_end__gte=models.F("service_start")),
                name="item_period_ordered",
            ),
        ]
        indexes = [
            # The adjustments of an item, live or not: what the self foreign
            # key checks for each deleted item (deleting a run's documents).
            # Without it each check scanned all items, quadratic in the book
            # (docs/benchmarks.md); it holds adjustments only.
            models.Index(
                fields=["adjusts"], condition=Q(adjusts__isnull=False), name="item_adjustments"
            ),
        ]

    def __str__(self):
        return f"{self.charge_name} {self.service_start}..{self.service_end}"

    @property
    def is_adjustment(self) -> bool:
        return self.kind == ItemKind.ADJUSTMENT

    @property
    def description(self) -> str:
        """The item's first line on documents: its charge's name, or an
        adjustment's sentence (``adjustment_description``)."""
        if not self.is_adjustment:
            return self.charge_name
        return adjustment_description(
            charge_name=self.charge_name,
            unit=self.unit,
            start=self.service_start,
            end=self.service_end,
            amount=self.amount,
        )


class DocumentTax(models.Model):
    """One tax line of a document (BILLING_RULES.md, Taxes): the account's
    tax code in its position, with the name and rate the document was
    computed with (the run's snapshot), and the amount signed as computed:
    a credit memo's tax line is negative, as its items' sum."""

    # The unique constraint below leads with the document: it serves the join.
    document = models.ForeignKey(
        Document, on_delete=models.CASCADE, related_name="taxes", db_index=False
    )
    position = models.PositiveSmallIntegerField()
    code = models.CharField(max_length=20)
    name = models.CharField(max_length=255)
    rate = ExactDecimalField(**TAX_RATE, help_text="Percent.")
    amount = ExactDecimalField(**MONEY, help_text="Signed, as computed.")

    class Meta:
        ordering = ["document", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["document", "position"], name="one_tax_line_per_position"
            ),
        ]

    def __str__(self):
        return f"{self.code} {self.rate}%: {self.amount}"


class PaymentMethod(models.TextChoices):
    BANK_TRANSFER = "bank_transfer", "Bank transfer"
    CARD = "card", "Card"
    CHECK = "check", "Check"
    CASH = "cash", "Cash"
    OTHER = "other", "Other"


class Payment(models.Model):
    document = models.ForeignKey(Document, on_delete=models.PROTECT, related_name="payments")
    amount = ExactDecimalField(**MONEY)
    payment_date = models.DateField()
    method = models.CharField(max_length=32, choices=PaymentMethod.choices)
    reference = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # The key of the form (or call) that recorded it: the same key again is
    # the same payment, never a second one (a double submit, a retry).
    request_key = models.UUIDField(null=True, blank=True, unique=True, editable=False)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
        ]

    def __str__(self):
        return f"{self.amount} on {self.document_id}"


class CreditApplication(models.Model):
    """Part of a posted credit memo applied to a posted invoice of the same account."""

    credit_memo = models.ForeignKey(
        Document, on_delete=models.PROTECT, related_name="applications_made"
    )
    invoice = models.ForeignKey(Document, on_delete=models.PROTECT, related_name="credits_applied")
    amount = ExactDecimalField(**MONEY)
    applied_at = models.DateTimeField(auto_now_add=True)
    applied_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # As Payment.request_key: the same key again is the same application.
    request_key = models.UUIDField(null=True, blank=True, unique=True, editable=False)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="credit_application_positive"),
        ]

    def __str__(self):
        return f"{self.amount} of {self.credit_memo_id} to {self.invoice_id}"


# A document is emailed under its row lock from the "not sent yet?" check to
# the record of the try (invoices.delivery): its deliveries are never pending
# or sending.
DOCUMENT_DELIVERY_STATUSES = [DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED]


class DocumentDelivery(models.Model):
    """One emailing of a posted document to its account's bill-to contact.

    A document has at most one first delivery (``resend`` off): a failed or
    skipped one is tried again on the same row (``attempts`` counts the
    tries) until it is sent, and the partial unique constraint below keeps a
    second one from appearing. Each resend a clerk asks for is a row of its
    own, named by the request's key (``resend_request``): a resend task
    delivered twice, or a resend form submitted twice, finds its row and
    sends nothing more.
    """

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="deliveries")
    to_address = models.CharField(max_length=254, blank=True)
    status = models.CharField(
        max_length=16,
        choices=[(status.value, status.label) for status in DOCUMENT_DELIVERY_STATUSES],
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, help_text="Why it failed or was skipped.")
    resend = models.BooleanField(default=False)
    resend_request = models.UUIDField(
        null=True, blank=True, editable=False, help_text="The resend request this row answers."
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "document deliveries"
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=DOCUMENT_DELIVERY_STATUSES),
                name="document_delivery_status_valid",
            ),
            models.UniqueConstraint(
                fields=["document"],
                condition=Q(resend=False),
                name="one_first_delivery_per_document",
            ),
            models.UniqueConstraint(
                fields=["document", "resend_request"],
                condition=Q(resend=True),
                name="one_delivery_per_resend_request",
            ),
            models.CheckConstraint(
                condition=Q(resend=False, resend_request__isnull=True)
                | Q(resend=True, resend_request__isnull=False),
                name="document_delivery_resend_has_request",
            ),
        ]

    def __str__(self):
        return f"{self.document_id} to {self.to_address or '-'}: {self.status}"


# --- Usage files uploaded from the usage page ------------------------------------


class UsageUpload(FileUpload):
    """An ``import_usage`` file a clerk uploaded on the usage page, imported
    by the task queue (``invoices/usage_uploads.py``; how: ``core/uploads.py``)."""

    class Meta(FileUpload.Meta):
        constraints = [upload_status_constraint("usage_upload_status_valid")]

    def get_absolute_url(self):
        return reverse("usage:upload", args=[self.pk])


class UsageUploadPart(FileUploadPart):
    upload = models.ForeignKey(UsageUpload, on_delete=models.CASCADE, related_name="parts")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["upload", "index"], name="one_usage_upload_part_index")
        ]
