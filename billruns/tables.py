from decimal import Decimal

import django_tables2 as tables
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from billruns.models import BillRun, BillRunFailure, Schedule
from customers.tables import BaseTable, money


def run_url(record):
    return reverse("billruns:detail", args=[record.number])


def totals_lines(totals):
    """A run's totals, {"USD": "12.30"}, as (currency, amount) pairs, sorted by currency."""
    return [(currency, money(Decimal(amount))) for currency, amount in sorted(totals.items())]


def run_owner(record):
    """Who a run belongs to: its schedule's name, else its creator."""
    if record.schedule_id:
        return f"Schedule: {record.schedule.name}"
    if record.created_by_id:
        return record.created_by.get_username()
    return "—"


class BillRunTable(BaseTable):
    expand = tables.TemplateColumn(
        template_name="billruns/_expand_button.html",
        verbose_name="",
        orderable=False,
        empty_values=(),
        exclude_from_export=True,
        attrs={"th": {"class": "col-expand"}, "td": {"class": "col-expand"}},
    )
    number = tables.Column(linkify=run_url, attrs={"td": {"class": "nowrap"}})
    status = tables.TemplateColumn(template_name="billruns/_status.html")
    target_date = tables.DateColumn(verbose_name="Target date", format="Y-m-d")
    invoice_date = tables.DateColumn(verbose_name="Invoice date", format="Y-m-d")
    accounts_processed = tables.Column(verbose_name="Processed", attrs={"td": {"class": "num"}})
    accounts_failed = tables.Column(verbose_name="Failed", attrs={"td": {"class": "num"}})
    invoices_count = tables.Column(verbose_name="Invoices", attrs={"td": {"class": "num"}})
    credit_memos_count = tables.Column(verbose_name="Credit memos", attrs={"td": {"class": "num"}})
    totals = tables.Column(orderable=False, empty_values=(), attrs={"td": {"class": "num"}})
    created_by = tables.Column(
        verbose_name="Created by",
        empty_values=(),
        order_by=("schedule__name", "created_by__username"),
    )
    created_at = tables.DateTimeColumn(
        verbose_name="Created", format="Y-m-d H:i", attrs={"td": {"class": "nowrap"}}
    )

    class Meta(BaseTable.Meta):
        model = BillRun
        fields = ()
        sequence = (
            "expand",
            "number",
            "status",
            "target_date",
            "invoice_date",
            "accounts_processed",
            "accounts_failed",
            "invoices_count",
            "credit_memos_count",
            "totals",
            "created_by",
            "created_at",
        )
        row_attrs = {"data-testid": "billrun-row", "data-number": lambda record: record.number}
        empty_text = "No bill runs match these filters."

    # Each row is followed by a hidden row with the run's details (see tables/table.html).
    detail_row_template = "billruns/_run_detail_row.html"

    def render_totals(self, value):
        if not value:
            return "—"
        return format_html_join("", '<span class="total-line">{} {}</span>', totals_lines(value))

    def value_totals(self, value):
        return "; ".join(f"{currency} {amount}" for currency, amount in sorted(value.items()))

    def render_created_by(self, record):
        return run_owner(record)

    def value_created_by(self, record):
        return "" if run_owner(record) == "—" else run_owner(record)

    def value_status(self, record):
        label = record.get_status_display()
        return f"{label} (with errors)" if record.has_errors else label


class FailureTable(BaseTable):
    account = tables.Column(
        verbose_name="Account",
        accessor="account__number",
        linkify=lambda record: reverse("customers:account_detail", args=[record.account.number]),
    )
    account_name = tables.Column(verbose_name="Account name", accessor="account__name")
    subscription = tables.Column(
        accessor="subscription__number", verbose_name="Subscription", default="—"
    )
    reason = tables.Column(attrs={"td": {"class": "reason"}})

    class Meta(BaseTable.Meta):
        model = BillRunFailure
        fields = ()
        sequence = ("account", "account_name", "subscription", "reason")
        row_attrs = {"data-testid": "failure-row"}
        empty_text = "Every selected account was billed."


class ScheduleTable(BaseTable):
    name = tables.Column()
    owner = tables.Column(accessor="owner__username", verbose_name="Owner")
    run_count = tables.Column(verbose_name="Runs made", attrs={"td": {"class": "num"}})
    last_run = tables.Column(verbose_name="Last run", empty_values=(), orderable=False)
    created_at = tables.DateTimeColumn(verbose_name="Created", format="Y-m-d H:i")

    class Meta(BaseTable.Meta):
        model = Schedule
        fields = ()
        sequence = ("name", "owner", "run_count", "last_run", "created_at")
        empty_text = "No schedules yet."

    def render_last_run(self, record):
        if not record.last_run_number:
            return "—"
        return format_html(
            '<a href="{}">{}</a>',
            reverse("billruns:detail", args=[record.last_run_number]),
            record.last_run_number,
        )

    def value_last_run(self, record):
        return record.last_run_number or ""
