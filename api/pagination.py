"""Lists: ``?limit=N`` (1..100, default 25) and an opaque, signed ``cursor``;
``{"results": [...], "next": URL or null}``.

Keyset pagination: a page is the rows after the last id of the previous
page, in the list's id order (``WHERE id > last ORDER BY id LIMIT n + 1``),
so any page costs one index range however far the cursor is. The cursor
is the last id, signed (django.core.signing): a cursor not made here is 400."""

from django.core import signing
from rest_framework.pagination import BasePagination
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from api.errors import Invalid
from api.renderers import RawJSON

DEFAULT_LIMIT = 25
MAX_LIMIT = 100
CURSOR_SALT = "api.cursor"


def page_limit(request):
    text = request.query_params.get("limit")
    if text is None:
        return DEFAULT_LIMIT
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise Invalid(
            f"limit must be a whole number from 1 to {MAX_LIMIT}, not {text[:20]!r}.",
            fields={"limit": [f"A whole number from 1 to {MAX_LIMIT}."]},
        )
    return int(text)


def make_cursor(last_id, *, scope):
    return signing.dumps([scope, last_id], salt=CURSOR_SALT, compress=False)


def read_cursor(text, *, scope):
    try:
        found_scope, last_id = signing.loads(text, salt=CURSOR_SALT)
    except (signing.BadSignature, ValueError, TypeError):
        raise Invalid(
            "The cursor is not one this API gave; use the 'next' link of a list.",
            fields={"cursor": ["Not a cursor of this list."]},
        ) from None
    if found_scope != scope or not isinstance(last_id, int):
        raise Invalid(
            "The cursor belongs to another list.", fields={"cursor": ["Not a cursor of this list."]}
        )
    return last_id


class KeysetPagination(BasePagination):
    """Pages of a queryset by id; the view says the order (``descending``)
    and the cursor's scope (the list's path: a cursor of one list is
    refused by another)."""

    def paginate_queryset(self, queryset, request, view=None, *, rows_of=None):
        """The page's rows. With ``rows_of``, ``queryset`` picks the page's
        ids alone (an index-only range: the planner cannot trade the keyset
        for another index, as it may when the rows have more columns than
        the index) and ``rows_of(ids)``, given them as a subquery, reads
        what is shown of them: a list of (id, row), in any order."""
        self.request = request
        self.limit = page_limit(request)
        self.scope = request.path
        descending = getattr(view, "descending", False)
        cursor = request.query_params.get("cursor")
        if cursor is not None:
            last = read_cursor(cursor, scope=self.scope)
            queryset = queryset.filter(**{"pk__lt" if descending else "pk__gt": last})
        page = queryset.order_by("-pk" if descending else "pk")[: self.limit + 1]
        if rows_of is None:
            rows = [(row.pk, row) for row in page]
        else:
            rows = sorted(rows_of(page.values("pk")), key=lambda row: row[0], reverse=descending)
        self.has_next = len(rows) > self.limit
        rows = rows[: self.limit]
        self.last_id = rows[-1][0] if rows else None
        return [row for _, row in rows]

    def get_next_link(self):
        if not self.has_next:
            return None
        url = self.request.build_absolute_uri()
        return replace_query_param(url, "cursor", make_cursor(self.last_id, scope=self.scope))

    def get_paginated_response(self, data):
        return Response({"results": data, "next": self.get_next_link()})

    def paginate_json(self, request, view, page_of):
        """A page whose rows are JSON text already made: ``page_of(after,
        limit)`` (``after``: the cursor's last id, 0 for the first page; ids
        are positive) returns an object with ``text`` (the JSON array of the
        page's rows), ``last_id`` and ``has_next``. Ascending lists only.
        Returns what ``page_of`` returned."""
        if getattr(view, "descending", False):
            raise ValueError("paginate_json pages ascending lists only.")
        self.request = request
        self.limit = page_limit(request)
        self.scope = request.path
        cursor = request.query_params.get("cursor")
        after = 0 if cursor is None else read_cursor(cursor, scope=self.scope)
        page = page_of(after, self.limit)
        self.has_next = page.has_next
        self.last_id = page.last_id
        return page

    def get_paginated_json_response(self, text):
        """``get_paginated_response`` of a page of rows as JSON text (the
        page of ``paginate_json``): the same body, written by
        api.renderers.RawJSONRenderer without parsing the rows."""
        link = self.get_next_link()
        following = "null" if link is None else JSONRenderer().render(link).decode()
        return Response(RawJSON(f'{{"results":{text},"next":{following}}}'))

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["results", "next"],
            "properties": {
                "results": schema,
                "next": {"type": "string", "format": "uri", "nullable": True},
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                "description": f"rows per page (default {DEFAULT_LIMIT})",
            },
            {
                "name": "cursor",
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": "the 'next' link's cursor",
            },
        ]
