"""What every table of the site shares: its template, bounded pagination,
exports safe to open in a spreadsheet, the status badge; and, for the
tables on the busiest pages, body rows written in Python."""

import inspect
import re
from typing import NamedTuple
from urllib.parse import quote

import django_tables2 as tables
from django.core.paginator import Paginator
from django.db import models
from django.urls import reverse
from django.utils.encoding import force_str
from django.utils.formats import localize
from django.utils.functional import cached_property
from django.utils.html import conditional_escape, format_html
from django.utils.http import RFC3986_SUBDELIMS
from django.utils.safestring import mark_safe
from django.utils.text import Truncator
from django.utils.timezone import template_localtime

from core.uploads import UploadStatus

# One look for every table in the product (no settings change needed: the
# template is named here rather than in DJANGO_TABLES2_TEMPLATE).
TABLE_TEMPLATE = "tables/table.html"


# A spreadsheet runs a cell that starts with one of these as a formula (tab
# and carriage return are stripped first by some), so an account named
# =HYPERLINK(...) would run on the clerk's machine when the export is opened.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# ... but a plain signed number such as "-55.00" is data, and must stay a
# number in the spreadsheet: it is not a formula and is left alone.
PLAIN_NUMBER = re.compile(r"[+-]?\d+(?:[.,]\d+)*")


def spreadsheet_safe(value):
    """An export cell's value with formula injection neutralised.

    Text that a spreadsheet would take for a formula gets a leading single
    quote, which spreadsheets read as "this is text" (in an XLSX the quote
    shows; the cell is plain text either way). Numbers, dates and other
    non-text values, and text that is a plain signed number, are unchanged.
    """
    if (
        isinstance(value, str)
        and value.startswith(FORMULA_TRIGGERS)
        and not PLAIN_NUMBER.fullmatch(value)
    ):
        return "'" + value
    return value


# A page's rows come from ?per_page= and ?page=, which anyone can type: a
# million rows per page would hold a web worker for minutes, and a page
# number past a bigint breaks the query. Within these bounds a page is a
# page; ?per_page= below 1 is the table's own size.
MAX_PER_PAGE = 100
MAX_PAGE = 1_000_000


class BaseTable(tables.Table):
    class Meta:
        template_name = TABLE_TEMPLATE
        attrs = {"class": "data-table"}

    def paginate(self, paginator_class=Paginator, per_page=None, page=1, *args, **kwargs):
        per_page = per_page if isinstance(per_page, int) and per_page > 0 else None
        per_page = min(per_page or self._meta.per_page, MAX_PER_PAGE)
        if isinstance(page, int):
            page = min(max(page, 1), MAX_PAGE)
        return super().paginate(paginator_class, per_page, page, *args, **kwargs)

    def as_values(self, exclude_columns=None):
        """Every CSV and XLSX export reads its cells here (django-tables2's
        ExportMixin): Table.as_values, with each column's methods worked out
        once per export (ColumnCells), and every table of the product
        neutralised for spreadsheets once."""
        exclude_columns = exclude_columns or ()
        columns = [
            bound_column
            for bound_column in self.columns.iterall()
            if not (bound_column.column.exclude_from_export or bound_column.name in exclude_columns)
        ]
        yield [spreadsheet_safe(force_str(column.header, strings_only=True)) for column in columns]
        cells = [ColumnCells(self, column) for column in columns]
        for row in self.rows:
            yield [
                spreadsheet_safe(force_str(column.export_value(row), strings_only=True))
                for column in cells
            ]

    def body_rows(self):
        """This page's rows for tables/table.html: what django-tables2's own
        loop over each row's cells (BoundRow.items) writes, with each
        column's methods worked out once per page (ColumnCells)."""
        columns = [ColumnCells(self, bound_column) for bound_column in self.columns]
        for row in self.paginated_rows:
            cells = [column.td_and_cell(row) for column in columns]
            yield BodyRow(row.record, row.attrs.as_html(), cells)


def status_badge(label, value=None, testid=None):
    css = (value or label).lower().replace(" ", "-")
    if testid:
        return format_html(
            '<span class="badge badge-{}" data-testid="{}">{}</span>', css, testid, label
        )
    return format_html('<span class="badge badge-{}">{}</span>', css, label)


# What django-tables2 offers a render_/value_ method or a column's render(),
# which takes those of them it names (django_tables2.Table, "render_FOO").
CELL_ARGUMENTS = frozenset({"value", "record", "column", "bound_column", "bound_row", "table"})


def call_with_cell_arguments(fn):
    """``fn`` as django-tables2 calls it for a cell: with the cell arguments
    it names, or not at all (None) when it names another. Its signature is
    read here, once, rather than for every cell."""
    parameters = inspect.signature(fn).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return lambda arguments: fn(**arguments)
    names = [p.name for p in parameters if p.kind is not p.VAR_POSITIONAL]
    if not CELL_ARGUMENTS.issuperset(names):
        return lambda arguments: None
    return lambda arguments: fn(**{name: arguments[name] for name in names})


class ColumnCells:
    """The cells of one column for one page or export, as django-tables2's
    BoundRow makes them (get_cell, get_cell_value: the value through the
    column's accessor, a field's choice label, the default for an empty value,
    the render or value method, the link), with what depends on the column
    only worked out once: the methods' signatures and, unless computed from
    the record, the ``<td>`` attributes. BoundRow reads the signatures for
    every cell, which was half the time of an export and of a busy page."""

    def __init__(self, table, bound_column):
        column = bound_column.column
        self.table, self.bound_column, self.column = table, bound_column, column
        # Columns that BoundRow treats apart are left to it.
        self.own_cells = not (
            isinstance(column, tables.ManyToManyColumn) or getattr(column, "text", None)
        )
        self.accessor = bound_column.accessor
        self.default, self.localized = bound_column.default, bound_column.localize
        self.render = call_with_cell_arguments(bound_column.render)
        if getattr(bound_column.value, "__func__", None) is tables.Column.value:
            # Column.value only calls the column's render with what it names.
            self.export = call_with_cell_arguments(column.render)
        else:
            self.export = call_with_cell_arguments(bound_column.value)
        self.link = bound_column.link
        self.link_url = None
        if self.link and callable(self.link.url) and not self.link.attrs:
            # linkify=<function>: the <a> its LinkTransform writes.
            self.link_url = call_with_cell_arguments(self.link.url)
        self.shows_choice_label = None  # known at the first record

    @cached_property
    def static_td(self):
        """The <td> attributes, or None when they are computed from the record."""
        declared = {**self.table.attrs, **self.column.attrs}
        td = declared.get("td", declared.get("cell", {}))
        if any(callable(value) for value in td.values()):
            return None
        return self.bound_column.attrs["td"].as_html()

    def value(self, record):
        if self.shows_choice_label is None:
            field = self.accessor.get_field(record)
            self.shows_choice_label = bool(getattr(field, "choices", None))
        if self.shows_choice_label:
            owner, name = self.accessor.penultimate(record)
            label = getattr(owner, f"get_{name}_display", None)
            if isinstance(owner, models.Model) and label:
                return label()
        return self.accessor.resolve(record, quiet=True)

    def arguments(self, row, value):
        return {
            "value": value,
            "record": row.record,
            "column": self.column,
            "bound_column": self.bound_column,
            "bound_row": row,
            "table": self.table,
        }

    def cell(self, row):
        """BoundRow.get_cell: what a page shows."""
        if not self.own_cells:
            return row.get_cell(self.bound_column.name)
        value = self.value(row.record)
        if value in self.column.empty_values:
            return self.default
        arguments = self.arguments(row, value)
        cell = self.render(arguments)
        if self.link_url:
            href = self.link_url(arguments)
            return cell if href is None else format_html('<a href="{}">{}</a>', href, cell)
        return self.link(cell, **arguments) if self.link else cell

    def export_value(self, row):
        """BoundRow.get_cell_value: what an export holds."""
        if not self.own_cells:
            return row.get_cell_value(self.bound_column.name)
        value = self.value(row.record)
        if value in self.column.empty_values:
            return None
        return self.export(self.arguments(row, value))

    def td_and_cell(self, row):
        """The <td> attributes and the cell as tables/table.html writes them."""
        cell = self.cell(row)
        td = self.static_td
        if td is None:
            # What BoundRow.items() sets for attributes computed from the record.
            self.bound_column.current_value, self.bound_column.current_record = cell, row.record
            td = self.bound_column.attrs["td"].as_html()
        # {{ cell }} in django-tables2's table.html, or {{ cell|localize }}, {{ cell|unlocalize }}.
        if self.localized is None:
            cell = localize(template_localtime(cell))
        else:
            cell = localize(cell, use_l10n=self.localized)
        return td, conditional_escape(cell)


class BodyRow(NamedTuple):
    record: object
    attrs: str
    cells: list  # (td attributes, cell) pairs


URL_ARG = "~arg~"


class PythonRowsMixin:
    """A table whose body rows are joined in Python rather than by the loop of
    tables/table.html over its cells (tables/python_rows.html extends it for
    the headers and pagination): the busiest pages' rows. The rows are the
    same, cell for cell (tests/test_tables.py). A table with a
    ``render_detail_row(record)`` method has that row after each of its rows.
    ``url_of`` reverses a URL once per page."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("template_name", "tables/python_rows.html")
        super().__init__(*args, **kwargs)
        self._url_parts = {}

    def url_of(self, viewname, arg):
        """reverse(viewname, args=[arg]) for a URL with one argument at its
        end, reversed once per page rather than once per row: the argument is
        quoted as reverse() quotes it."""
        if viewname not in self._url_parts:
            self._url_parts[viewname] = reverse(viewname, args=[URL_ARG]).rsplit(URL_ARG, 1)
        prefix, suffix = self._url_parts[viewname]
        return f"{prefix}{quote(str(arg), safe=RFC3986_SUBDELIMS + '~:@')}{suffix}"

    def paginated_rows_html(self):
        detail = getattr(self, "render_detail_row", None)
        rows = []
        for row in self.body_rows():
            cells = "".join([f"<td {td}>{cell}</td>" for td, cell in row.cells])
            # Every part is escaped: the attributes by as_html, the cells by td_and_cell.
            rows.append(mark_safe(f"<tr {row.attrs}>{cells}</tr>"))  # noqa: S308
            if detail:
                rows.append(detail(row.record))
        return rows


# The badge colours of an uploaded file's statuses (static/css/app.css, "Badges").
UPLOAD_BADGES = {
    UploadStatus.PENDING: "pending",
    UploadStatus.PROCESSING: "processing",
    UploadStatus.IMPORTED: "completed",
    UploadStatus.REFUSED: "error",
    UploadStatus.ERROR: "error",
}


def upload_status_badge(status, testid=None):
    return status_badge(status, UPLOAD_BADGES.get(status), testid=testid)


class UploadTable(BaseTable):
    """The newest uploaded import files (core.uploads), on their page."""

    uploaded_at = tables.DateTimeColumn(
        format="Y-m-d H:i",
        verbose_name="Uploaded",
        linkify=lambda record: record.get_absolute_url(),
        attrs={"td": {"class": "nowrap"}},
    )
    file_name = tables.Column(verbose_name="File", attrs={"td": {"class": "cell-long"}})
    uploaded_by = tables.Column(
        accessor="uploaded_by__username",
        verbose_name="By",
        attrs={"th": {"class": "phone-hidden"}, "td": {"class": "phone-hidden"}},
    )
    status = tables.Column()
    outcome = tables.Column(
        empty_values=(),
        verbose_name="Outcome",
        attrs={"th": {"class": "phone-hidden"}, "td": {"class": "cell-long phone-hidden"}},
    )

    class Meta(BaseTable.Meta):
        fields = ()
        sequence = ("uploaded_at", "file_name", "uploaded_by", "status", "outcome")
        orderable = False
        row_attrs = {"data-testid": "upload-row"}
        empty_text = "No files uploaded yet."

    def render_file_name(self, value):
        # In full on the upload's page.
        return Truncator(value).chars(60)

    def render_status(self, value):
        return upload_status_badge(value)

    def render_outcome(self, record):
        if record.summary:
            return record.summary
        if record.problems:
            return Truncator(record.problems[0]).chars(90)
        return "—"
