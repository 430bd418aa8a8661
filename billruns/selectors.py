"""Reads of bill runs shared by views, commands and tables."""

import datetime
import functools
from dataclasses import dataclass

from django.db import connections
from django.db.models import Count, Max, Min, Q

from billruns.models import BillRun, RunStatus
from core.money import plain_decimal
from customers.models import Account, Charge, Subscription
from invoices.models import (
    DeliveryStatus,
    Document,
    DocumentDelivery,
    DocumentItem,
    DocumentStatus,
    DocumentTax,
    DocumentType,
    TenantSettings,
)


def run_progress(run: BillRun) -> tuple[int, int]:
    """(accounts processed, accounts selected); kept current by each chunk."""
    return run.accounts_processed, run.accounts_selected


def _date(value):
    return value.isoformat() if value else None


# The columns ``documents_as_dicts`` reads: values, not model instances (a
# page of the API's 100 documents with their items would build some 700).
DOCUMENT_COLUMNS = (
    "id",
    "document_type",
    "number",
    "account__number",
    "status",
    "currency",
    "amount",
    "balance",
    "invoice_date",
    "due_date",
    "subtotal",
)
ITEM_COLUMNS = (
    "document_id",
    "subscription__number",
    "charge_name",
    "service_start",
    "service_end",
    "amount",
    "kind",
    "charge__number",
    "quantity",
)
TAX_COLUMNS = ("document_id", "code", "rate", "amount")


def document_as_dict(document, items, taxes=()):
    """A document, its tax lines (in position order) and its items as
    ``billrun show --json --documents`` prints them; each a dict of the
    values of DOCUMENT_COLUMNS, ITEM_COLUMNS and TAX_COLUMNS."""
    return {
        "type": document["document_type"],
        "number": document["number"],
        "account": document["account__number"],
        "status": document["status"],
        "currency": document["currency"],
        "amount": f"{document['amount']:.2f}",
        "balance": f"{document['balance']:.2f}",
        "invoice_date": _date(document["invoice_date"]),
        "due_date": _date(document["due_date"]),
        # Signed as computed: a credit memo's subtotal is negative, its
        # amount the positive credit.
        "subtotal": f"{document['subtotal']:.2f}",
        # One line per tax code of the account, in their order, 0.00 lines
        # included; signed as computed (a credit memo's are negative).
        "taxes": [
            {
                "code": tax["code"],
                "rate": plain_decimal(tax["rate"]),
                "amount": f"{tax['amount']:.2f}",
            }
            for tax in taxes
        ],
        "items": [
            {
                "subscription": item["subscription__number"],
                "charge": item["charge_name"],
                "service_start": _date(item["service_start"]),
                "service_end": _date(item["service_end"]),
                "amount": f"{item['amount']:.2f}",
                # "charge", or "adjustment" (a change's correction of a
                # charge item: its service is what it corrects, no quantity).
                "kind": item["kind"],
                "charge_number": item["charge__number"],
                "quantity": None if item["quantity"] is None else plain_decimal(item["quantity"]),
            }
            for item in items
        ],
    }


def run_summary(run: BillRun, *, documents=False) -> dict:
    """The run as ``billrun show --json`` prints it (INTERFACES.md)."""
    failures = run.failures.select_related("account", "subscription").order_by("id")
    summary = {
        "number": run.number,
        "status": run.status,
        "has_errors": run.has_errors,
        "target_date": _date(run.target_date),
        "invoice_date": _date(run.invoice_date),
        "created_by": run.created_by.get_username() if run.created_by_id else None,
        "schedule": run.schedule.name if run.schedule_id else None,
        "retry_of": run.retry_of.number if run.retry_of_id else None,
        "auto_post": run.auto_post,
        "exclude_charge_types": sorted(run.exclude_charge_types),
        "preview": run.preview,
        "accounts_selected": run.accounts_selected,
        "accounts_processed": run.accounts_processed,
        "accounts_failed": run.accounts_failed,
        "invoices": run.invoices_count,
        "credit_memos": run.credit_memos_count,
        "totals": dict(run.totals),
        "failures": [
            {
                "account": failure.account.number,
                "subscription": failure.subscription.number if failure.subscription_id else None,
                "reason": failure.reason,
            }
            for failure in failures
        ],
    }
    if run.error_message:
        summary["error"] = run.error_message
    if run.last_post_error:
        summary["last_post_error"] = run.last_post_error
    if documents:
        # all_objects: a preview's show lists its Preview documents.
        summary["documents"] = documents_as_dicts(
            Document.all_objects.filter(bill_run=run),
            items=DocumentItem.all_objects.filter(document__bill_run=run),
            taxes=DocumentTax.objects.filter(document__bill_run=run),
        )
    return summary


def documents_as_dicts(documents, *, items=None, taxes=None) -> list[dict]:
    """``documents`` (a Document queryset) as ``billrun show --json
    --documents`` lists them, in id order, in three queries: the documents,
    their items and their tax lines (``items``, ``taxes``: querysets covering
    them, e.g. a run's; by default those of the documents read). The run's
    ``documents``, a webhook's ``document.posted``, the API's documents."""
    docs = list(documents.order_by("id").values(*DOCUMENT_COLUMNS))
    ids = [document["id"] for document in docs]
    if items is None:
        items = DocumentItem.all_objects.filter(document_id__in=ids)
    if taxes is None:
        taxes = DocumentTax.objects.filter(document_id__in=ids)
    taxes_by_document = {}
    for tax in taxes.order_by("document_id", "position").values(*TAX_COLUMNS):
        taxes_by_document.setdefault(tax["document_id"], []).append(tax)
    items_by_document = {}
    for item in items.order_by("document_id", "id").values(*ITEM_COLUMNS):
        items_by_document.setdefault(item["document_id"], []).append(item)
    return [
        document_as_dict(
            document,
            items_by_document.get(document["id"], []),
            taxes_by_document.get(document["id"], []),
        )
        for document in docs
    ]


def documents_page_as_dicts(ids) -> list[tuple[int, dict]]:
    """The documents of ``ids`` (a queryset of Document ids, e.g. the API's
    keyset page, any manager's: preview documents included) as
    ``documents_as_dicts`` shows them, with their ids, in any order. On
    PostgreSQL one statement that builds each document's JSON, tax lines
    and items included (``_documents_json``); elsewhere two queries."""
    if connections[ids.db].vendor == "postgresql":
        return _documents_json(ids)
    return _documents_joined(Document.all_objects.filter(pk__in=ids))


def _documents_json(ids):
    """One statement: PostgreSQL builds each document of ``ids`` as
    ``document_as_dict`` does (json, not jsonb: the keys in their order),
    the page's as one array of [id, document] (one parse, not one a
    document: 0.5 ms less a page), and psycopg parses it (C's json): no ORM
    rows, no dicts made a value at a time, no second query for the taxes.
    Money is ``numeric(_, 2)``, whose text has its 2 places as f"{:.2f}"
    gives them; rates and quantities without trailing zeros (trim_scale) are
    plain_decimal's; dates in json are ISO 8601 whatever the DateStyle.
    tests/api/test_api_documents_page.py keeps this equal to ``billrun show
    --json --documents``."""
    connection = connections[ids.db]
    subquery, params = ids.query.get_compiler(connection=connection).as_sql()
    document = Document._meta.db_table
    account = Account._meta.db_table
    item = DocumentItem._meta.db_table
    tax = DocumentTax._meta.db_table
    subscription = Subscription._meta.db_table
    charge = Charge._meta.db_table
    sql = f"""
        SELECT json_agg(json_build_array(d.id, json_build_object(
            'type', d.document_type, 'number', d.number, 'account', a.number,
            'status', d.status, 'currency', d.currency,
            'amount', d.amount::text, 'balance', d.balance::text,
            'invoice_date', d.invoice_date, 'due_date', d.due_date,
            'subtotal', d.subtotal::text,
            'taxes', COALESCE((
                SELECT json_agg(json_build_object(
                    'code', t.code, 'rate', trim_scale(t.rate)::text, 'amount', t.amount::text
                ) ORDER BY t.position)
                FROM {tax} t WHERE t.document_id = d.id
            ), '[]'::json),
            'items', COALESCE((
                SELECT json_agg(json_build_object(
                    'subscription', s.number, 'charge', i.charge_name,
                    'service_start', i.service_start, 'service_end', i.service_end,
                    'amount', i.amount::text, 'kind', i.kind, 'charge_number', c.number,
                    'quantity', trim_scale(i.quantity)::text
                ) ORDER BY i.id)
                FROM {item} i
                JOIN {subscription} s ON s.id = i.subscription_id
                JOIN {charge} c ON c.id = i.charge_id
                WHERE i.document_id = d.id
            ), '[]'::json)
        )))
        FROM {document} d JOIN {account} a ON a.id = d.account_id
        WHERE d.id IN ({subquery})
    """  # noqa: S608 (the tables' names and Django's own compiled subquery)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [tuple(row) for row in cursor.fetchone()[0] or ()]


@dataclass(frozen=True)
class JsonPage:
    """A page of a run's documents as JSON text (``run_documents_page_json``):
    ``text`` is the array of the first ``limit`` documents after the cursor,
    ``last_id`` the last of them (None on an empty page), ``has_next``
    whether more follow, ``run_exists`` whether the run does."""

    run_exists: bool
    has_next: bool
    last_id: int | None
    text: str


def _json_string(column):
    """SQL: ``column`` (text, never NULL) as a JSON string, escaped as
    Python's json writes it (PostgreSQL's escape_json: ``\\"``, ``\\\\``,
    ``\\b \\f \\n \\r \\t``, other control characters ``\\u00xx``, the rest
    as it is); U+2028 and U+2029 are left to the renderer, as DRF's."""
    return f"to_json({column})::text"


def _json_money(column):
    """SQL: a numeric(_, 2) ``column`` as f"{:.2f}" writes it, quoted."""
    return f"""'"' || {column}::text || '"'"""


def _document_text():
    """SQL: the text each document of ``run_documents_page_json`` is, in
    ``document_as_dict``'s keys and order, compact (``,`` and ``:``, as
    DRF's JSONRenderer writes with COMPACT_JSON), its tax lines by position
    and its items by id. document_type, status and kind are written
    unescaped: their check constraints hold them to a few plain words."""
    tax = DocumentTax._meta.db_table
    item = DocumentItem._meta.db_table
    subscription = Subscription._meta.db_table
    charge = Charge._meta.db_table
    return f"""
    '{{"type":"' || d.document_type
    || '","number":' || COALESCE({_json_string("d.number")}, 'null')
    || ',"account":' || {_json_string("a.number")}
    || ',"status":"' || d.status
    || '","currency":' || {_json_string("d.currency")}
    || ',"amount":' || {_json_money("d.amount")}
    || ',"balance":' || {_json_money("d.balance")}
    || ',"invoice_date":' || to_json(d.invoice_date)::text
    || ',"due_date":' || to_json(d.due_date)::text
    || ',"subtotal":' || {_json_money("d.subtotal")}
    || ',"taxes":[' || COALESCE((
        SELECT string_agg(
            '{{"code":' || {_json_string("t.code")}
            || ',"rate":"' || trim_scale(t.rate)::text
            || '","amount":' || {_json_money("t.amount")} || '}}',
            ',' ORDER BY t.position)
        FROM {tax} t WHERE t.document_id = d.id
    ), '')
    || '],"items":[' || COALESCE((
        SELECT string_agg(
            '{{"subscription":' || {_json_string("s.number")}
            || ',"charge":' || {_json_string("i.charge_name")}
            || ',"service_start":' || to_json(i.service_start)::text
            || ',"service_end":' || to_json(i.service_end)::text
            || ',"amount":' || {_json_money("i.amount")}
            || ',"kind":"' || i.kind
            || '","charge_number":' || {_json_string("c.number")}
            || ',"quantity":' || COALESCE('"' || trim_scale(i.quantity)::text || '"', 'null')
            || '}}',
            ',' ORDER BY i.id)
        FROM {item} i
        JOIN {subscription} s ON s.id = i.subscription_id
        JOIN {charge} c ON c.id = i.charge_id
        WHERE i.document_id = d.id
    ), '')
    || ']}}'
"""  # noqa: S608 (the tables' names)


# The most documents a page of run_documents_page_json has (the API's
# MAX_LIMIT): its statement reads one more id than that, a constant, so
# that the plan PostgreSQL keeps for it (below) reads an index range of so
# many rows whatever the page's limit.
PAGE_MAX = 100
# run_documents_page_json's statement, prepared once per connection: its
# planning (tables, indexes, statistics of seven tables) cost about a
# third of its time, at every page.
PAGE_STATEMENT = "billing_run_documents_page"


@functools.cache
def _page_sql(prepared=True):
    """run_documents_page_json's statement (made once), of parameters $1
    the run's number, $2 the cursor's id, $3 the page's limit (not
    ``prepared``: %(number)s, %(after)s, %(limit)s)."""
    number, after, limit = (
        ("$1", "$2", "$3") if prepared else ("%(number)s", "%(after)s", "%(limit)s")
    )
    document_text = _document_text()
    return f"""
        SELECT r.id, p.n, p.last_id, p.text
        FROM (SELECT 1) AS one
        LEFT JOIN {BillRun._meta.db_table} r ON r.number = {number}::text
        LEFT JOIN LATERAL (
            SELECT count(*) AS n,
                max(d.id) FILTER (WHERE k.place <= {limit}::integer) AS last_id,
                string_agg({document_text}, ',' ORDER BY d.id)
                    FILTER (WHERE k.place <= {limit}::integer) AS text
            FROM (
                SELECT u.id, row_number() OVER (ORDER BY u.id) AS place
                FROM {Document._meta.db_table} u
                WHERE u.bill_run_id = r.id AND u.id > {after}::bigint
                ORDER BY u.id
                LIMIT {PAGE_MAX + 1}
            ) AS k
            JOIN {Document._meta.db_table} d ON d.id = k.id
            JOIN {Account._meta.db_table} a ON a.id = d.account_id
            WHERE k.place <= {limit}::integer + 1
        ) AS p ON true
    """  # noqa: S608 (the tables' names; the values are parameters)


def _execute_page(cursor, connection, values):
    """Run the page's statement with ``values`` ($1, $2, $3) on ``cursor``:
    by EXECUTE of the statement prepared on this connection (PREPARE the
    first time; it outlives transactions, rolled back or not, and goes with
    the session), or, behind a pooler in transaction mode (the database's
    DISABLE_SERVER_SIDE_CURSORS, Django's setting for one: a session is not
    the client's own), planned every time."""
    if connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS"):
        number, after, limit = values
        cursor.execute(
            _page_sql(prepared=False), {"number": number, "after": after, "limit": limit}
        )
        return
    session = connection.connection
    if not getattr(session, "billing_run_documents_page_prepared", False):
        cursor.execute(f"PREPARE {PAGE_STATEMENT}(text, bigint, integer) AS {_page_sql()}")
        session.billing_run_documents_page_prepared = True
    cursor.execute(f"EXECUTE {PAGE_STATEMENT}(%s, %s, %s)", values)


def run_documents_page_json(number, *, after, limit, using="default") -> JsonPage:
    """The documents of the run ``number`` with ids above ``after`` (0: from
    the first), in id order, ``limit`` (1..PAGE_MAX) of them, as the JSON
    text of the list ``documents_as_dicts`` makes of them, byte for byte
    what DRF's JSONRenderer (compact, UNICODE_JSON) writes of it but U+2028
    and U+2029, which it escapes in the whole response. PostgreSQL only: one
    statement, prepared once per connection (``_execute_page``), no ORM
    (nothing compiled, no row made into a dict, no JSON parsed).

    The page's ids are a range of the index document_run_id (the run's id
    from its number, the ids alone: read with the documents' columns the
    planner may walk the primary key instead), ``limit + 1`` of them, the
    last telling whether a next page exists; the run's own row says whether
    it exists (an empty page of an unknown run is a 404). Money is
    numeric(_, 2), whose text has its 2 places; rates and quantities
    without trailing zeros (trim_scale) are plain_decimal's; dates in json
    are ISO 8601 whatever the DateStyle. All managers' documents (previews
    included: a preview's list is its own). tests/api/test_api_documents_page.py
    keeps it equal to the parsed and re-rendered ``billrun show --json
    --documents``."""
    if not 1 <= limit <= PAGE_MAX:
        raise ValueError(f"A page has 1 to {PAGE_MAX} documents, not {limit}.")
    connection = connections[using]
    with connection.cursor() as cursor:
        _execute_page(cursor, connection, [number, after, limit])
        run_id, count, last_id, text = cursor.fetchone()
    return JsonPage(
        run_exists=run_id is not None,
        has_next=bool(count) and count > limit,
        last_id=last_id,
        text=f"[{text or ''}]",
    )


def _documents_joined(documents):
    """``documents`` (a Document queryset) as ``documents_as_dicts`` shows
    them, with their ids, in id order, in two queries: the documents joined
    to their items, then their tax lines (SQLite's path of
    documents_page_as_dicts)."""
    through_items = {f"items__{column}": column for column in ITEM_COLUMNS[1:]}
    rows = documents.order_by("id", "items__id").values(
        *DOCUMENT_COLUMNS, "items__id", *through_items
    )
    docs, items_by_document = [], {}
    for row in rows:
        items = items_by_document.get(row["id"])
        if items is None:
            docs.append(row)
            items = items_by_document[row["id"]] = []
        if row["items__id"] is not None:  # (a document without items: one row, no item)
            items.append({column: row[joined] for joined, column in through_items.items()})
    taxes_by_document = {}
    # (by the page's subquery again, not a list of its ids: one parameter)
    taxes = DocumentTax.objects.filter(document_id__in=documents.values("id"))
    for tax in taxes.order_by("document_id", "position").values(*TAX_COLUMNS):
        taxes_by_document.setdefault(tax["document_id"], []).append(tax)
    return [
        (
            document["id"],
            document_as_dict(
                document,
                items_by_document[document["id"]],
                taxes_by_document.get(document["id"], []),
            ),
        )
        for document in docs
    ]


# --- the run's page ----------------------------------------------------------------

# The page keeps polling while emails go out; a request that shows no progress
# for this long is taken as stopped (its worker died, or the task was lost) and
# the page stops polling and says how many are not emailed yet.
EMAIL_STALL_SECONDS = 120


@dataclass(frozen=True)
class DocumentCounts:
    """A run's documents by type and status."""

    by_type_status: dict

    def count(self, document_type=None, status=None) -> int:
        return sum(
            n
            for (kind, state), n in self.by_type_status.items()
            if document_type in (None, kind) and status in (None, state)
        )

    def canceled(self, document_type) -> int:
        return self.count(document_type, DocumentStatus.CANCELED)


def run_document_counts(run: BillRun) -> DocumentCounts:
    """One grouped count over all the run's documents (index
    document_run_status): for a run in progress, whose progress bar needs
    them; a settled run's page reads ``run_settled_counts`` instead."""
    documents = Document.all_objects.filter(bill_run=run)
    rows = documents.values_list("document_type", "status").annotate(n=Count("id")).order_by()
    return DocumentCounts({(kind, state): n for kind, state, n in rows})


@dataclass(frozen=True)
class SettledCounts:
    """What a settled run's page shows of its documents' statuses: how many
    of each type are canceled, and whether any is posted."""

    canceled_by_type: dict
    has_posted: bool

    def canceled(self, document_type) -> int:
        return self.canceled_by_type.get(document_type, 0)


def run_settled_counts(run: BillRun) -> SettledCounts:
    """SettledCounts in two reads of index document_run_status, the canceled
    documents' range and one posted entry, rather than counting every
    document (100,000 in a large run: most of its page's time)."""
    canceled = (
        Document.all_objects.filter(bill_run=run, status=DocumentStatus.CANCELED)
        .values_list("document_type")
        .annotate(n=Count("id"))
        .order_by()
    )
    posted = Document.all_objects.filter(bill_run=run, status=DocumentStatus.POSTED).exists()
    return SettledCounts(dict(canceled), posted)


def types_posted_with_run() -> list[str]:
    """What posting a run posts: its invoices, and its credit memos when
    Advanced AR Settlement is on (BILLING_RULES.md, the transition table)."""
    if TenantSettings.current().advanced_ar_settlement:
        return [DocumentType.INVOICE, DocumentType.CREDIT_MEMO]
    return [DocumentType.INVOICE]


@dataclass(frozen=True)
class Progress:
    """What the run's progress bar shows: ``done`` of ``total`` ``unit``."""

    label: str
    done: int
    total: int
    unit: str


def run_progress_bar(run: BillRun, counts: DocumentCounts) -> Progress | None:
    """The bar of a run a worker is moving on: accounts while it generates,
    documents while it posts or cancels; None once the run is settled."""
    status = run.status
    if status == RunStatus.PENDING:
        return Progress("Waiting for a worker…", 0, 0, "accounts processed")
    if status == RunStatus.PROCESSING:
        processed, selected = run_progress(run)
        return Progress("Generating invoices…", processed, selected, "accounts processed")
    if status == RunStatus.POST_IN_PROGRESS:
        posted = counts.count(status=DocumentStatus.POSTED)
        drafts = sum(counts.count(kind, DocumentStatus.DRAFT) for kind in types_posted_with_run())
        return Progress("Posting documents…", posted, posted + drafts, "documents posted")
    if status == RunStatus.CANCEL_IN_PROGRESS:
        canceled = counts.count(status=DocumentStatus.CANCELED)
        return Progress("Canceling documents…", canceled, counts.count(), "documents canceled")
    return None


@dataclass(frozen=True)
class PostPreview:
    """What posting the run would do, for its Post button and confirmation."""

    documents: int
    past_due: int
    past_due_first: datetime.date | None


def run_post_preview(run: BillRun, *, today: datetime.date) -> PostPreview:
    """The Draft documents posting would post, and how many of them are due
    before ``today`` (posted already past due: INTERFACES.md, Numbers and dates)."""
    drafts = Document.objects.filter(
        bill_run=run, status=DocumentStatus.DRAFT, document_type__in=types_posted_with_run()
    )
    found = drafts.aggregate(
        documents=Count("id"),
        past_due=Count("id", filter=Q(due_date__lt=today)),
        past_due_first=Min("due_date", filter=Q(due_date__lt=today)),
    )
    return PostPreview(**found)


@dataclass(frozen=True)
class EmailProgress:
    """The run's latest request to email its documents to customers."""

    resend: bool
    documents: int
    sent: int
    failed: int
    skipped: int
    last_activity: datetime.datetime | None

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.skipped

    @property
    def pending(self) -> int:
        return max(self.documents - self.done, 0)

    def in_progress(self, *, now, requested_at=None) -> bool:
        """Emails still to go out with a recent sign of life (a delivery, or
        the request itself)."""
        if not self.pending:
            return False
        latest = max((t for t in (self.last_activity, requested_at) if t), default=None)
        return latest is not None and (now - latest).total_seconds() < EMAIL_STALL_SECONDS


def run_email_progress(run: BillRun, *, requested=False) -> EmailProgress | None:
    """Sent / failed / skipped / pending emails of the run's Posted documents
    for its latest request: the first emailing (one delivery row per
    document, retried in place), or the latest resend (rows of its request).
    None when nothing was asked: no delivery yet, no auto-email and
    ``requested`` false."""
    deliveries = DocumentDelivery.objects.filter(document__bill_run=run)
    latest = deliveries.order_by("-id").values("resend", "resend_request").first()
    if latest is None and not (requested or run.auto_email):
        return None
    if latest is not None and latest["resend"]:
        scope = deliveries.filter(resend=True, resend_request=latest["resend_request"])
    else:
        scope = deliveries.filter(resend=False)
    found = scope.aggregate(
        sent=Count("id", filter=Q(status=DeliveryStatus.SENT)),
        failed=Count("id", filter=Q(status=DeliveryStatus.FAILED)),
        skipped=Count("id", filter=Q(status=DeliveryStatus.SKIPPED)),
        last_created=Max("created_at"),
        last_sent=Max("sent_at"),
    )
    activity = [t for t in (found.pop("last_created"), found.pop("last_sent")) if t]
    if run.auto_email and run.posted_at:
        activity.append(run.posted_at)
    documents = Document.objects.filter(bill_run=run, status=DocumentStatus.POSTED).count()
    return EmailProgress(
        resend=bool(latest and latest["resend"]),
        documents=documents,
        last_activity=max(activity, default=None),
        **found,
    )


def run_accounts_failed_by_subscription(run: BillRun) -> int:
    """How many of the run's failed accounts failed because of one of their
    subscriptions (the others failed as a whole: no bill-to contact, ...)."""
    return run.failures.filter(subscription__isnull=False).values("account_id").distinct().count()
