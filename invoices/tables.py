import django_tables2 as tables
from django.urls import reverse
from django.utils.html import format_html

from core.money import format_money
from core.tables import BaseTable, status_badge
from customers.models import UsageRecord
from customers.pricing import plain
from invoices.models import Document, Payment


def document_url(record):
    return reverse("invoices:detail", args=[record.number])


# On a phone a document table keeps its number, account, amount and status
# (static/css/app.css, "Tables"); the columns marked so are in the document's page.
PHONE_HIDDEN = {"th": {"class": "phone-hidden"}, "td": {"class": "phone-hidden"}}


class MoneyColumn(tables.Column):
    def __init__(self, *args, phone_hidden=False, **kwargs):
        css = "num phone-hidden" if phone_hidden else "num"
        kwargs.setdefault("attrs", {"td": {"class": css}, "th": {"class": css}})
        super().__init__(*args, **kwargs)

    def render(self, value, record):
        # The currency code shows beside the amount on a phone, where the
        # Currency column is hidden.
        currency = getattr(record, "currency", "")
        if not currency:
            return format_money(value)
        return format_html('{}<span class="phone-only"> {}</span>', format_money(value), currency)

    def value(self, value):
        return value


class DocumentTable(BaseTable):
    """Invoices and credit memos: the invoices list, and a bill run's tabs."""

    number = tables.Column(linkify=document_url, attrs={"td": {"class": "nowrap"}})
    document_type = tables.Column(verbose_name="Type", attrs=PHONE_HIDDEN)
    account = tables.Column(
        accessor="account__number",
        verbose_name="Account",
        linkify=lambda record: reverse("customers:account_detail", args=[record.account.number]),
    )
    account_name = tables.Column(
        accessor="account__name", verbose_name="Account name", attrs=PHONE_HIDDEN
    )
    bill_run = tables.Column(
        attrs=PHONE_HIDDEN,
        accessor="bill_run__number",
        verbose_name="Bill run",
        default="—",
        linkify=lambda record: record.bill_run.get_absolute_url() if record.bill_run_id else None,
    )
    invoice_date = tables.DateColumn(format="Y-m-d", verbose_name="Date", attrs=PHONE_HIDDEN)
    due_date = tables.DateColumn(format="Y-m-d", verbose_name="Due date", attrs=PHONE_HIDDEN)
    currency = tables.Column(attrs=PHONE_HIDDEN)
    # Taxes (issue 15): the subtotal and the sum of the tax lines, as the
    # document shows them (a credit memo's as a credit); the amount is the
    # total, subtotal plus tax.
    subtotal = MoneyColumn(accessor="shown_subtotal", phone_hidden=True, orderable=False)
    tax = MoneyColumn(accessor="shown_tax", phone_hidden=True, orderable=False)
    amount = MoneyColumn()
    balance = MoneyColumn(phone_hidden=True)
    status = tables.Column()

    class Meta(BaseTable.Meta):
        model = Document
        fields = ()
        sequence = (
            "number",
            "document_type",
            "account",
            "account_name",
            "bill_run",
            "invoice_date",
            "due_date",
            "currency",
            "subtotal",
            "tax",
            "amount",
            "balance",
            "status",
        )
        row_attrs = {"data-testid": "document-row"}
        empty_text = "No invoices or credit memos match these filters."

    def render_status(self, record):
        return status_badge(record.display_status)

    def value_status(self, record):
        return record.display_status


class RunDocumentTable(DocumentTable):
    """A bill run's invoices or credit memos: the run and type go without saying."""

    class Meta(DocumentTable.Meta):
        exclude = ("document_type", "bill_run")
        empty_text = "This bill run has none."


class PaymentTable(BaseTable):
    payment_date = tables.DateColumn(format="Y-m-d", verbose_name="Date")
    amount = MoneyColumn()
    method = tables.Column()
    reference = tables.Column(default="—")
    created_by = tables.Column(accessor="created_by__username", verbose_name="Recorded by")

    class Meta(BaseTable.Meta):
        model = Payment
        fields = ()
        sequence = ("payment_date", "amount", "method", "reference", "created_by")
        orderable = False
        empty_text = "No payments yet."


class UsageRecordTable(BaseTable):
    """Usage records with their charge and account. ``billed_on`` is the
    number of the document that billed the record (invoices.selectors
    ``usage_records``), or None."""

    # On a phone: the date, quantity, charge and whether it is billed.
    record_id = tables.Column(
        verbose_name="Id",
        attrs={"th": {"class": "phone-hidden"}, "td": {"class": "cell-long phone-hidden"}},
    )
    date = tables.DateColumn(format="Y-m-d", attrs={"td": {"class": "nowrap"}})
    quantity = tables.Column(attrs={"td": {"class": "num"}, "th": {"class": "num"}})
    unit = tables.Column(accessor="charge__unit", verbose_name="Unit", attrs=PHONE_HIDDEN)
    charge = tables.Column(accessor="charge__number", verbose_name="Charge")
    charge_name = tables.Column(
        accessor="charge__name", verbose_name="Charge name", attrs=PHONE_HIDDEN
    )
    account = tables.Column(
        accessor="charge__subscription__account__number",
        verbose_name="Account",
        attrs=PHONE_HIDDEN,
        linkify=lambda record: reverse(
            "customers:account_detail", args=[record.charge.subscription.account.number]
        ),
    )
    account_name = tables.Column(
        accessor="charge__subscription__account__name",
        verbose_name="Account name",
        attrs=PHONE_HIDDEN,
    )
    subscription = tables.Column(
        accessor="charge__subscription__number", verbose_name="Subscription", attrs=PHONE_HIDDEN
    )
    billed_on = tables.Column(
        verbose_name="Billed on",
        orderable=False,
        empty_values=(),
        attrs={"td": {"class": "nowrap"}},
    )
    imported_at = tables.DateTimeColumn(
        format="Y-m-d H:i", verbose_name="Imported", attrs=PHONE_HIDDEN
    )

    class Meta(BaseTable.Meta):
        model = UsageRecord
        fields = ()
        sequence = (
            "record_id",
            "date",
            "quantity",
            "unit",
            "charge",
            "charge_name",
            "account",
            "account_name",
            "subscription",
            "billed_on",
            "imported_at",
        )
        # By id: the primary key's index answers a page at once however many
        # records there are. Sorting by date reads and sorts every record that
        # the filter leaves (measured: 0.5 s for 300,000 on PostgreSQL), as
        # no index leads with the date: one would slow every import (see
        # docs/benchmarks.md, "Usage import"); filter by account or charge first.
        order_by = ("record_id",)
        row_attrs = {"data-testid": "usage-row"}
        empty_text = "No usage records match these filters."

    def render_quantity(self, value, record):
        # The unit shows under the quantity on a phone, where its column is hidden.
        return format_html(
            '{}<span class="phone-only"> {}</span>', plain(value), record.charge.unit
        )

    def value_quantity(self, value):
        # As the import reads it: no thousands separator, exponent or trailing zeros.
        return plain(value).replace(",", "")

    def render_billed_on(self, value):
        if not value:
            return status_badge("Not billed", "pending")
        return format_html('<a href="{}">{}</a>', reverse("invoices:detail", args=[value]), value)

    def value_billed_on(self, value):
        return value or ""
