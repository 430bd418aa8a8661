"""What every table of the site shares: its template, bounded pagination,
exports safe to open in a spreadsheet, the status badge."""

import re

import django_tables2 as tables
from django.core.paginator import Paginator
from django.utils.html import format_html
from django_tables2 import utils as tables_utils

# One look for every table in the product (no settings change needed: the
# template is named here rather than in DJANGO_TABLES2_TEMPLATE).
TABLE_TEMPLATE = "tables/table.html"


def _remember_signatures():
    """django-tables2 (3.0.1) calls inspect.signature for every cell of every
    row it renders or exports, to learn which arguments a render_/value_
    method takes: half the time of an export (measured: 3.2 of 6.4 s for
    5,000 invoices). A function's signature never changes, so it is worked
    out once per function (a bound method's without ``self``, as
    inspect.signature gives it) and remembered."""
    uncached = tables_utils.signature
    if getattr(uncached, "remembers", False):
        return
    known = {}

    def signature(fn):
        try:
            key = (getattr(fn, "__func__", fn), hasattr(fn, "__self__"))
            return known[key]
        except KeyError:
            result = uncached(fn)
            if len(known) < 4096:  # functions made per call must not grow it forever
                known[key] = result
            return result
        except TypeError:  # an unhashable callable
            return uncached(fn)

    signature.remembers = True
    tables_utils.signature = signature


_remember_signatures()


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
        ExportMixin), so every table of the product is neutralised once."""
        for row in super().as_values(exclude_columns=exclude_columns):
            yield [spreadsheet_safe(value) for value in row]


def status_badge(label, value=None):
    css = (value or label).lower().replace(" ", "-")
    return format_html('<span class="badge badge-{}">{}</span>', css, label)
