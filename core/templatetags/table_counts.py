"""``{% table_count table %}``: the sentence beside every table's pager that
says which rows the page shows ("Showing 26–50 of 184 accounts")."""

from django import template
from django.utils.formats import number_format
from django_tables2.paginators import LazyPaginator

register = template.Library()


def _nouns(table):
    model = table._meta.model
    if model is None:
        return "row", "rows"
    return str(model._meta.verbose_name), str(model._meta.verbose_name_plural)


def _number(value):
    return number_format(value, force_grouping=True)


@register.simple_tag
def table_count(table):
    page = getattr(table, "page", None)
    if page is None:
        return ""
    shown = len(page.object_list)
    if not shown:
        return ""
    paginator = page.paginator
    first = (page.number - 1) * paginator.per_page + 1
    last = first + shown - 1
    singular, plural = _nouns(table)
    if isinstance(paginator, LazyPaginator):
        # The lazy paginator never counts the rows (a count of a million
        # documents costs more than the page): the total is known only on the
        # last page.
        if not paginator.is_last_page(page.number):
            return f"Showing {plural} {_number(first)}–{_number(last)}, more on the next pages"
        total = last
    else:
        total = paginator.count
    if total == 1:
        return f"Showing 1 {singular}"
    if first == 1 and last == total:
        return f"Showing all {_number(total)} {plural}"
    return f"Showing {_number(first)}–{_number(last)} of {_number(total)} {plural}"
