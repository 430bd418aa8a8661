import html
from datetime import date, datetime
from decimal import Decimal
from functools import cache

import django_tables2 as tables
from django.template.loader import get_template
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import mark_safe
from django_tables2.data import TableListData
from django_tables2.rows import BoundRows

from billruns.models import BillRun, BillRunFailure, ReviewFlag, ReviewLine
from billruns.review import line_flags
from core.money import format_money, format_plain, format_signed_money
from core.tables import BaseTable, PythonRowsMixin
from invoices.models import ItemKind, adjustment_description
from invoices.selectors import documents_items
from invoices.tables import PHONE_HIDDEN, RunDocumentTable

PHONE_HIDDEN_NUM = {"th": {"class": "phone-hidden"}, "td": {"class": "num phone-hidden"}}


def totals_lines(totals, *, currency_first=True):
    """A run's totals, {"USD": "12.30"}, as (currency, amount) pairs sorted by
    currency, the amount written as pages write money (core.money);
    (amount, currency) pairs with ``currency_first`` false."""
    lines = [
        (currency, format_money(Decimal(amount))) for currency, amount in sorted(totals.items())
    ]
    return lines if currency_first else [(amount, currency) for currency, amount in lines]


def totals_with_tax(totals, tax_totals):
    """A run's totals as (currency, total, tax) triples sorted by currency,
    money written as pages write it; tax is "" in a currency without any tax
    line (``BillRun.tax_totals``)."""
    return [
        (
            currency,
            amount,
            format_money(Decimal(tax_totals[currency])) if currency in tax_totals else "",
        )
        for currency, amount in totals_lines(totals)
    ]


def total_lines_html(lines):
    """(amount, currency) pairs as the lines of a totals cell."""
    return mark_safe(  # noqa: S308 (escaped)
        "".join(
            f'<span class="total-line">{esc(amount)} {esc(currency)}</span>'
            for amount, currency in lines
        )
    )


def run_owner(record):
    """Who a run belongs to: its schedule's name, else its creator."""
    if record.schedule_id:
        return f"Schedule: {record.schedule.name}"
    if record.created_by_id:
        return record.created_by.get_username()
    return "—"


# The list renders 25 runs, each twice (its row and its hidden detail row):
# a run's status and selection are written here, in Python, for the list and
# for the run's page (billruns/templatetags/bill_runs.py), rather than by a
# template per cell, which was most of the list's time.

# Statuses in which a run with failed accounts shows the alert icon.
ALERT_STATUSES = frozenset({"Completed", "PostInProgress", "Posted"})


@cache
def alert_icon():
    """The alert icon's markup: includes/alert_icon.html, rendered once (it has no variables)."""
    return get_template("includes/alert_icon.html").render()


PREVIEW_BADGE = mark_safe(  # noqa: S308 (a constant)
    '<span class="badge badge-preview" data-testid="preview-badge" '
    'title="A preview: it consumed nothing and can be neither posted nor emailed">Preview</span>'
)


def esc(value):
    """conditional_escape without its lazy-string wrapper (a tenth of the
    list's time went to that wrapper): the same text."""
    if hasattr(value, "__html__"):
        return value.__html__()
    return html.escape(str(value))


def status_html(run, *, preview_badge=True):
    """The status badge, the preview badge of a preview (once per row or
    page: ``preview_badge``), and the alert icon for a run with failures."""
    alert = alert_icon() if run.has_errors and run.status in ALERT_STATUSES else ""
    preview = PREVIEW_BADGE if run.preview and preview_badge else ""
    return mark_safe(  # noqa: S308 (every part escaped)
        f'<span class="status-cell"><span class="badge badge-{esc(run.status.lower())}" '
        f'data-testid="billrun-status">{esc(run.get_status_display())}</span>'
        f"{preview}{alert}</span>"
    )


def selection_html(run, url_of=None):
    """The accounts a run selects, their numbers linked (in words, without
    links, for the command and the admin: BillRun.selection_label).
    ``url_of(viewname, arg)``: how to reverse a link (a table's url_of)."""
    if url_of is None:

        def url_of(viewname, arg):
            return reverse(viewname, args=[arg])

    if run.retry_of_id:
        retried = run.retry_of
        return format_html(
            'Retry of <a href="{}" data-testid="retry-of">{}</a>: {} failed account{}',
            url_of("billruns:detail", retried.number),
            retried.number,
            retried.accounts_failed,
            plural(retried.accounts_failed),
        )
    if run.account_id:
        account = run.account
        subs = [s.number for s in run.subscriptions.all()]
        return format_html(
            'Account <a href="{}">{}</a> {}; {}',
            url_of("customers:account_detail", account.number),
            account.number,
            account.name,
            "subscriptions " + ", ".join(subs) if subs else "all subscriptions",
        )
    batches = ", ".join(f"Batch{b}" for b in run.batches) if run.batches else "All batches"
    days = ", ".join(str(d) for d in run.bill_cycle_days) if run.bill_cycle_days else "all"
    return f"{batches}; bill cycle day {days}"


def local_format(value, strftime_format):
    """A date or datetime as the template filter date shows it: an aware
    datetime in the current time zone."""
    if isinstance(value, datetime) and timezone.is_aware(value):
        value = timezone.localtime(value)
    return value.strftime(strftime_format)


class FormattedDateColumn(tables.Column):
    """tables.DateColumn / DateTimeColumn without their template per cell:
    the same text on the page and the same values in the exports."""

    def __init__(self, strftime_format, **kwargs):
        super().__init__(**kwargs)
        self.strftime_format = strftime_format

    def render(self, value):
        return local_format(value, self.strftime_format)

    def value(self, value):
        if isinstance(value, datetime):
            return value.isoformat(sep=" ")
        if isinstance(value, date):
            return value.isoformat()
        return value


def expand_button(controls, number, testid):
    """The button that shows or hides the hidden row ``controls`` (static/js/app.js)."""
    return mark_safe(  # noqa: S308 (every part escaped)
        f'<button type="button" class="expand-button" data-testid="{esc(testid)}" data-expand'
        f' aria-expanded="false" aria-controls="{esc(controls)}"><svg viewBox="0 0 24 24"'
        ' aria-hidden="true" focusable="false"><path d="m9 6 6 6-6 6"/></svg>'
        f'<span class="visually-hidden">Details of {esc(number)}</span></button>'
    )


DETAIL_ROW = (
    '<tr class="detail-row" id="run-details-{pk}" hidden>\n'
    '  <td colspan="{colspan}">\n'
    '    <div class="detail-grid" data-testid="billrun-details">\n'
    "      <dl>\n"
    "        <dt>Status</dt><dd>{status}</dd>\n"
    "        <dt>Selection</dt><dd>{selection}</dd>\n"
    "        <dt>Dates</dt><dd>target {target_date}, invoice {invoice_date}</dd>\n"
    "        <dt>Options</dt><dd>{options}</dd>\n"
    "        <dt>Excluded charge types</dt><dd>{excluded}</dd>\n"
    "      </dl>\n"
    "      <dl>\n"
    "        <dt>Created</dt><dd>{created}</dd>\n"
    "        <dt>Started</dt><dd>{started}</dd>\n"
    "        <dt>Completed</dt><dd>{completed}</dd>\n"
    "        {posted}\n"
    "      </dl>\n"
    "      <dl>\n"
    "        <dt>Accounts</dt>"
    "<dd>{processed} processed of {selected} selected, {failed} failed</dd>\n"
    "        <dt>Documents</dt><dd>{invoices} invoice{invoices_s}, "
    "{credit_memos} credit memo{credit_memos_s}</dd>\n"
    "        <dt>Totals</dt><dd>{totals}</dd>\n"
    "        {error}\n"
    "      </dl>\n"
    "    </div>\n"
    "  </td>\n"
    "</tr>"
)
SECONDS = "%Y-%m-%d %H:%M:%S"


def plural(count):
    return "" if count == 1 else "s"


def account_url(table, record):
    return table.url_of("customers:account_detail", record.account.number)


class BillRunTable(PythonRowsMixin, BaseTable):
    expand = tables.Column(
        verbose_name="",
        orderable=False,
        empty_values=(),
        exclude_from_export=True,
        attrs={"th": {"class": "col-expand"}, "td": {"class": "col-expand"}},
    )
    number = tables.Column(attrs={"td": {"class": "nowrap"}})
    status = tables.Column()
    # On a phone the row keeps number, status and totals; the expanded row
    # has the rest.
    target_date = FormattedDateColumn("%Y-%m-%d", verbose_name="Target date", attrs=PHONE_HIDDEN)
    invoice_date = FormattedDateColumn("%Y-%m-%d", verbose_name="Invoice date", attrs=PHONE_HIDDEN)
    accounts_processed = tables.Column(verbose_name="Processed", attrs=PHONE_HIDDEN_NUM)
    accounts_failed = tables.Column(verbose_name="Failed", attrs=PHONE_HIDDEN_NUM)
    invoices_count = tables.Column(verbose_name="Invoices", attrs=PHONE_HIDDEN_NUM)
    credit_memos_count = tables.Column(verbose_name="Credit memos", attrs=PHONE_HIDDEN_NUM)
    totals = tables.Column(orderable=False, empty_values=(), attrs={"td": {"class": "num"}})
    created_by = tables.Column(
        verbose_name="Created by",
        attrs=PHONE_HIDDEN,
        empty_values=(),
        order_by=("schedule__name", "created_by__username"),
    )
    created_at = FormattedDateColumn(
        "%Y-%m-%d %H:%M",
        verbose_name="Created",
        attrs={"th": {"class": "phone-hidden"}, "td": {"class": "nowrap phone-hidden"}},
    )

    class Meta(BaseTable.Meta):
        model = BillRun
        attrs = {"class": "data-table billrun-table"}
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

    def run_url(self, number):
        return self.url_of("billruns:detail", number)

    @cached_property
    def _colspan(self):
        return len(self.columns)

    def render_expand(self, record):
        return expand_button(f"run-details-{record.pk}", record.number, "billrun-expand")

    def render_number(self, record):
        return format_html('<a href="{}">{}</a>', self.run_url(record.number), record.number)

    def value_number(self, value):
        return value

    def render_status(self, record):
        return status_html(record)

    def render_detail_row(self, record):
        """The hidden row after a run's row, with its details (the expand button shows it)."""
        options = "Auto-post" if record.auto_post else "Manual post"
        if record.auto_email:
            options += ", auto-email"
        posted = error = ""
        if record.posted_at:
            posted = f"<dt>Posted</dt><dd>{esc(local_format(record.posted_at, SECONDS))}</dd>"
        if record.error_message:
            error = f'<dt>Error</dt><dd class="text-danger">{esc(record.error_message)}</dd>'
        # Every value escaped (esc), as format_html would.
        return mark_safe(  # noqa: S308
            DETAIL_ROW.format(
                pk=esc(record.pk),
                colspan=self._colspan,
                status=status_html(record, preview_badge=False),
                selection=esc(selection_html(record, self.url_of)),
                target_date=record.target_date.isoformat(),
                invoice_date=record.invoice_date.isoformat(),
                options=options,
                excluded=esc(record.exclude_charge_types_label),
                created=local_format(record.created_at, SECONDS),
                started=local_format(record.started_at, SECONDS) if record.started_at else "—",
                completed=local_format(record.completed_at, SECONDS)
                if record.completed_at
                else "—",
                posted=posted,
                processed=record.accounts_processed,
                selected=record.accounts_selected,
                failed=record.accounts_failed,
                invoices=record.invoices_count,
                invoices_s=plural(record.invoices_count),
                credit_memos=record.credit_memos_count,
                credit_memos_s=plural(record.credit_memos_count),
                totals=self.all_totals_html(record.totals),
                error=error,
            )
        )

    # A run in many currencies would make its row as tall as its currencies:
    # the row shows this many and how many more, the expanded row all of them.
    TOTALS_SHOWN = 2

    def all_totals_html(self, totals):
        if not totals:
            return "—"
        return total_lines_html(totals_lines(totals, currency_first=False))

    def render_totals(self, value):
        if not value:
            return "—"
        lines = totals_lines(value, currency_first=False)
        shown = lines if len(lines) <= self.TOTALS_SHOWN else lines[: self.TOTALS_SHOWN - 1]
        html = total_lines_html(shown)
        if len(shown) < len(lines):
            more = len(lines) - len(shown)
            html += format_html(
                '<span class="total-line total-more muted">+ {} more currencies</span>', more
            )
        return html

    # The list's rows, written from each record directly: what the generic
    # path (core.tables.ColumnCells) writes, cell for cell (tests/test_tables.py),
    # in a fifth of its time. A column this does not know (none today) falls
    # back to the generic path.
    def _fast_cells(self):
        writers = {
            "expand": self.render_expand,
            "number": self.render_number,
            "status": status_html,
            "target_date": lambda r: r.target_date.strftime("%Y-%m-%d"),
            "invoice_date": lambda r: r.invoice_date.strftime("%Y-%m-%d"),
            "accounts_processed": lambda r: r.accounts_processed,
            "accounts_failed": lambda r: r.accounts_failed,
            "invoices_count": lambda r: r.invoices_count,
            "credit_memos_count": lambda r: r.credit_memos_count,
            "totals": lambda r: self.render_totals(r.totals),
            "created_by": run_owner,
            "created_at": lambda r: local_format(r.created_at, "%Y-%m-%d %H:%M"),
        }
        cells = []
        for bound_column in self.columns:
            writer = writers.get(bound_column.name)
            if (
                writer is None
                or bound_column.column.attrs != type(self).base_columns[bound_column.name].attrs
            ):
                return None
            declared = {**self.attrs, **bound_column.column.attrs}
            td = declared.get("td", declared.get("cell", {}))
            if any(callable(value) for value in td.values()):
                return None  # computed from the record: the generic path
            cells.append((bound_column.attrs["td"].as_html(), writer))
        return cells

    def paginated_rows_html(self):
        cells = self._fast_cells()
        if cells is None:
            return super().paginated_rows_html()
        rows = []
        for row in self.paginated_rows:
            record, parity = row.record, row.get_even_odd_css_class()
            tds = "".join([f"<td {td}>{esc(writer(record))}</td>" for td, writer in cells])
            rows.append(
                mark_safe(  # noqa: S308 (every cell escaped)
                    f'<tr data-testid="billrun-row" data-number="{esc(record.number)}" '
                    f'class="{parity}">{tds}</tr>'
                )
            )
            rows.append(self.render_detail_row(record))
        return rows

    def value_totals(self, value):
        return "; ".join(f"{currency} {amount}" for currency, amount in sorted(value.items()))

    def render_created_by(self, record):
        return run_owner(record)

    def value_created_by(self, record):
        return "" if run_owner(record) == "—" else run_owner(record)

    def value_status(self, record):
        label = record.get_status_display()
        return f"{label} (with errors)" if record.has_errors else label


class FailureTable(PythonRowsMixin, BaseTable):
    account = tables.Column(
        verbose_name="Account",
        accessor="account__number",
        linkify=account_url,
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


# A document's items in its expanded row: a list rather than a nested table
# (the tab's rows stay one level of <tr>), laid out as columns by the CSS.
ITEM_ROW = (
    '<li class="run-item{row_class}" data-testid="{testid}"><span class="run-item-what">'
    '<span class="item-name">{name}</span><span class="item-refs">charge {charge}</span>'
    '<span class="item-period phone-only">{period}</span>{rating}</span>'
    '<span class="run-item-period phone-hidden">{period}</span>'
    '<span class="num">{quantity}</span><span class="num">{amount}</span></li>'
)
ITEMS_ROW = (
    '<tr class="detail-row" id="document-items-{pk}" hidden><td colspan="{colspan}">'
    '<ul class="run-items" data-testid="document-items" aria-label="Items of {number}">'
    '<li class="run-item run-items-head" aria-hidden="true"><span>Item</span>'
    '<span class="phone-hidden">Service period</span><span class="num">Qty</span>'
    '<span class="num">Amount</span></li>{rows}</ul></td></tr>'
)


NO_ITEMS = '<li class="muted">No items.</li>'
ADJUSTMENT_MARK = '<span class="adjustment-mark">Adjustment</span> '


def item_row_html(item):
    """One item of an expanded row: every value escaped here, the row joined
    with str.format rather than format_html (a page has a hundred of them)."""
    start, end = item["service_start"], item["service_end"]
    period = start.isoformat() if start == end else f"{start.isoformat()} – {end.isoformat()}"
    quantity = "—"
    if item["quantity"] is not None:
        quantity = escape(f"{format_plain(item['quantity'])} {item['unit']}".rstrip())
    rating = f'<span class="rating">{escape(item["rating"])}</span>' if item["rating"] else ""
    adjustment = item["kind"] == ItemKind.ADJUSTMENT
    name = escape(item["charge_name"])
    if adjustment:
        name = ADJUSTMENT_MARK + escape(
            adjustment_description(
                charge_name=item["charge_name"],
                unit=item["unit"],
                start=start,
                end=end,
                amount=item["amount"],
            )
        )
    return ITEM_ROW.format(
        row_class=" adjustment-row" if adjustment else "",
        testid="adjustment-item" if adjustment else "run-item",
        name=name,
        charge=escape(item["charge__number"]),
        rating=rating,
        period=period,
        quantity=quantity,
        amount=format_money(item["amount"]),
    )


class RunDocumentsTable(PythonRowsMixin, RunDocumentTable):
    """A bill run's invoices or credit memos (its page's tabs): RunDocumentTable
    with its rows written in Python and its dates without a template per cell.
    Each row expands to its items (charge, period, quantity and unit, amount,
    rating), read for the whole page in one query."""

    expand = tables.Column(
        verbose_name="",
        orderable=False,
        empty_values=(),
        exclude_from_export=True,
        attrs={"th": {"class": "col-expand"}, "td": {"class": "col-expand"}},
    )
    # DocumentTable's links, with their URLs reversed once per page.
    # A preview's documents have no number and no page of their own.
    number = tables.Column(
        linkify=lambda table, record: table.url_of("invoices:detail", record.number),
        attrs={"td": {"class": "nowrap"}},
        default="Preview",
    )
    account = tables.Column(
        accessor="account__number",
        verbose_name="Account",
        linkify=account_url,
    )
    invoice_date = FormattedDateColumn("%Y-%m-%d", verbose_name="Date", attrs=PHONE_HIDDEN)
    due_date = FormattedDateColumn("%Y-%m-%d", verbose_name="Due date", attrs=PHONE_HIDDEN)

    class Meta(RunDocumentTable.Meta):
        attrs = {"class": "data-table run-documents-table"}
        sequence = ("expand", "...")

    @cached_property
    def _colspan(self):
        return len(self.columns)

    @cached_property
    def _page_items(self):
        # The page's records without making rows again: every BoundRow made
        # counts for the rows' odd/even class. A lazy page holds its rows in a
        # list; another page, or no pagination, the data its rows are read from.
        page = getattr(self, "page", None)
        rows = page.object_list if page is not None else self.rows
        records = rows.data if isinstance(rows, BoundRows) else [row.record for row in rows]
        return documents_items([record.pk for record in records])

    def render_expand(self, record):
        return expand_button(
            f"document-items-{record.pk}",
            record.number or "the preview document",
            "document-expand",
        )

    def render_detail_row(self, record):
        """The hidden row after a document's row: its items."""
        items = self._page_items.get(record.pk, [])
        rows = "".join([item_row_html(item) for item in items]) or NO_ITEMS
        # Every value in the items is escaped by item_row_html.
        rows = mark_safe(rows)  # noqa: S308
        return format_html(
            ITEMS_ROW, pk=record.pk, colspan=self._colspan, number=record.number, rows=rows
        )


REVIEW_FLAG_BADGES = {
    ReviewFlag.MISSING: "error",
    ReviewFlag.NEW: "processing",
    ReviewFlag.CHANGED: "warning",
    ReviewFlag.ZERO: "pending",
    ReviewFlag.NEGATIVE: "warning",
    ReviewFlag.ADJUSTMENTS: "processing",
    ReviewFlag.PAST_DUE: "error",
}


NUMBER_CELL = {"td": {"class": "num"}, "th": {"class": "num"}}


class PageRows(TableListData):
    """A page's rows, already in the order the clerk sorted by (the
    database's): django-tables2 takes the sort for the headers' links and
    leaves the rows as they are."""

    def order_by(self, aliases):
        pass


class ReviewTable(PythonRowsMixin, BaseTable):
    """The Review tab: every account either run billed, with its totals this
    time and last time (billruns.review)."""

    # Each column sorts by its place (ReviewLine.pos_*): the export's
    # queryset; a page's rows come sorted already (billruns.review.review_page).
    account = tables.Column(
        accessor="account_number",
        verbose_name="Account",
        order_by=("pos_account",),
        linkify=lambda table, record: table.url_of(
            "customers:account_detail", record.account_number
        ),
    )
    account_name = tables.Column(
        accessor="account__name", verbose_name="Account name", orderable=False, attrs=PHONE_HIDDEN
    )
    currency = tables.Column(order_by=("pos_currency",), attrs=PHONE_HIDDEN)
    previous_total = tables.Column(
        verbose_name="Last time", default="—", order_by=("pos_previous",), attrs=NUMBER_CELL
    )
    total = tables.Column(
        verbose_name="This run", default="—", order_by=("pos_total",), attrs=NUMBER_CELL
    )
    change = tables.Column(order_by=("pos_change",), attrs=NUMBER_CELL)
    percent = tables.Column(
        verbose_name="Change %", empty_values=(), order_by=("pos_percent",), attrs=NUMBER_CELL
    )
    flags = tables.Column(verbose_name="Flags", empty_values=(), orderable=False)

    class Meta(BaseTable.Meta):
        model = ReviewLine
        fields = ()
        sequence = (
            "account",
            "account_name",
            "currency",
            "previous_total",
            "total",
            "change",
            "percent",
            "flags",
        )
        order_by = ("account",)
        row_attrs = {"data-testid": "review-row"}
        empty_text = "Neither run billed any account."

    def __init__(self, *args, today=None, **kwargs):
        # Its pager is the review's own: rows X-Y of N, by cursor.
        kwargs.setdefault("template_name", "billruns/_review_table.html")
        super().__init__(*args, **kwargs)
        self.today = today or timezone.localdate()

    def render_previous_total(self, value):
        return format_money(value)

    def render_total(self, value):
        return format_money(value)

    def render_change(self, value):
        return format_signed_money(value)

    def render_percent(self, record):
        return record.percent_change

    def render_flags(self, record):
        return format_html_join(
            " ",
            '<span class="badge badge-{}" data-testid="review-flag" data-flag="{}">{}</span>',
            (
                (REVIEW_FLAG_BADGES[flag], flag.value, flag.label)
                for flag in line_flags(record, today=self.today)
            ),
        )

    def value_flags(self, record):
        return "; ".join(flag.label for flag in line_flags(record, today=self.today))

    def value_previous_total(self, value):
        return "" if value is None else f"{value:.2f}"

    def value_total(self, value):
        return "" if value is None else f"{value:.2f}"

    def value_change(self, value):
        return f"{value:.2f}"

    def value_percent(self, record):
        # A number a spreadsheet reads as one ("-100.0"), or "new".
        return record.percent_change.rstrip("%").lstrip("+")
