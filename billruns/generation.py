"""The bill run engine's write side: one chunk of accounts per task.

A chunk reads its accounts, subscriptions and charges in bulk, asks
``billruns.engine`` what each account owes, and writes documents, items,
failures and charged-through dates set-based, in one transaction that also
marks the chunk done and counts its accounts on the run. That transaction is
the unit of idempotency: a chunk delivered twice, or redone after its worker
died, either finds itself done or starts from a clean slate.

Concurrency: the chunk locks its accounts (in id order, so two runs over
overlapping accounts cannot deadlock) before it reads their charges, so a
second run over the same accounts waits and then sees what the first billed.
The partial unique index on items is the last line of defence.

A preview (``run.preview``; INTERFACES.md, Previews) goes through the same
chunks and the same reads and engine, and branches in two places only: it
reads its accounts without locking them (a real run over the same accounts
never waits for it), and ``_write_documents`` writes Preview documents
(no number) and preview items, and moves no charged-through date nor marks
any item reversed. Its items are out of the partial unique indexes.
"""

import datetime
import itertools
import logging
import re
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from billruns import engine
from billruns.models import BillRun, BillRunChunk, BillRunFailure, ChunkStatus, RunStatus
from core import bulk, locks
from customers import selectors as customer_selectors
from customers.models import (
    Account,
    Charge,
    ChargePrice,
    ChargeType,
    Status,
    Subscription,
    TaxRate,
)
from invoices import sequences, taxes
from invoices.models import (
    Document,
    DocumentItem,
    DocumentStatus,
    DocumentTax,
    DocumentType,
    ItemKind,
    TenantSettings,
)

logger = logging.getLogger(__name__)

# Accounts per chunk task (settings.BILLRUN_CHUNK_SIZE). A chunk of 2,000
# accounts with a few charges each holds a few MB of rows in a worker and
# commits in well under a second; many chunks let several workers (and hosts)
# share a run, and larger ones cost less each (docs/benchmarks.md).
DEFAULT_CHUNK_SIZE = 2000

# Rows per INSERT / UPDATE statement: large enough to amortise round trips,
# small enough to stay under SQLite's variable limit and PostgreSQL's
# comfortable statement size.
WRITE_BATCH_SIZE = 2000

ACCOUNT_IN_ANOTHER_RUN = (
    "Account is being billed by {run}, which is still processing; retry once that run has completed"
)
TAX_CODE_NOT_IN_RUN = (
    "Tax code {codes} has no rate in this run (created after the run started); "
    "retry the account in a new run"
)


ACCOUNT_FIELDS = (
    "id",
    "number",
    "bill_to_email",
    "currency",
    "bill_cycle_day",
    "payment_term_days",
)
CHARGE_FIELDS = (
    "id",
    "subscription_id",
    "number",
    "name",
    "charge_type",
    "amount",
    "quantity",
    "unit",
    "pricing_id",
    "currency",
    "period",
    "start_date",
    "end_date",
    "charged_through_date",
    "taxable",
)


def chunk_size():
    return int(getattr(settings, "BILLRUN_CHUNK_SIZE", DEFAULT_CHUNK_SIZE))


class RunNotProcessing(Exception):
    """The run left Processing (failed or canceled) while the chunk worked."""


def process_chunk(chunk_id, *, cluster=""):
    """Process one chunk; return True when this call did the work.

    Transaction: one for the whole chunk. If writing it fails (a constraint,
    a row another transaction changed), the chunk is redone one account per
    savepoint, so one bad account costs only itself. Idempotent.
    """
    try:
        with transaction.atomic():
            return _process_chunk(chunk_id, cluster=cluster, isolate=False)
    except RunNotProcessing:
        return False
    except DatabaseError as exc:
        if connection.needs_rollback or not connection.is_usable():
            raise
        logger.warning("chunk %s: redoing one account at a time after %s", chunk_id, exc)
    # The chunk's row is not locked between the two transactions: renew its
    # heartbeat there, so the sweeper never sees this live worker as gone
    # (billruns.leases).
    BillRunChunk.objects.filter(pk=chunk_id, status=ChunkStatus.PENDING).update(
        heartbeat_at=timezone.now()
    )
    try:
        with transaction.atomic():
            return _process_chunk(chunk_id, cluster=cluster, isolate=True)
    except RunNotProcessing:
        return False


def _process_chunk(chunk_id, *, cluster, isolate):
    if connection.vendor == "postgresql":
        # A chunk's commit need not wait for the disk: if the server crashed
        # and lost it, the chunk would be pending again and redone (its done
        # mark is in the same transaction), and any later durable commit,
        # such as the run's completion, makes it durable first (the log is
        # flushed in order).
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
    chunk = locks.locked(BillRunChunk.objects.filter(pk=chunk_id)).first()
    if chunk is None or chunk.status == ChunkStatus.DONE:
        return False
    run = BillRun.objects.get(pk=chunk.bill_run_id)
    if run.status != RunStatus.PROCESSING:
        return False
    advanced_ar = TenantSettings.current().advanced_ar_settlement
    subscription_ids = (
        list(run.subscriptions.values_list("id", flat=True)) if run.account_id else []
    )
    errors = UnexpectedErrors(run)
    if isolate:
        failures = []
        for account_id in chunk.account_ids:
            try:
                with transaction.atomic():
                    failures += _bill_accounts(
                        run, [account_id], subscription_ids, advanced_ar, errors
                    )
            except Exception as exc:  # one account's failure never stops the run
                reason = errors.reason(exc, account_id, "Could not save this account's documents")
                failures.append(
                    BillRunFailure.objects.create(
                        bill_run=run, account_id=account_id, reason=reason
                    )
                )
    else:
        failures = _bill_accounts(run, chunk.account_ids, subscription_ids, advanced_ar, errors)
    _log_failures(run, chunk, failures)

    chunk.status = ChunkStatus.DONE
    chunk.finished_at = timezone.now()
    chunk.cluster = cluster[:128]
    chunk.save(update_fields=["status", "finished_at", "cluster"])
    if connection.vendor == "postgresql":
        # The foreign keys of the rows just written are checked now rather
        # than at the commit, which comes after the run row is locked below:
        # the other workers' chunks wait for that lock, not for these checks.
        # (Switching to IMMEDIATE runs the pending checks; switching back
        # leaves the rest of the transaction as Django's deferred default.)
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    # Last statement of the transaction, so the run row is locked only for
    # the moment of the commit. It also fences the chunk against a run that
    # failed or was canceled meanwhile: then nothing of the chunk commits.
    counted = BillRun.objects.filter(pk=run.pk, status=RunStatus.PROCESSING).update(
        accounts_processed=F("accounts_processed") + chunk.account_count
    )
    if not counted:
        raise RunNotProcessing
    return True


class UnexpectedErrors:
    """Reasons for the clerk for errors nobody expected, with the traceback
    logged once: the accounts of a chunk that fail for the same cause (a bug
    hits them all) share one log entry, and their reason names it."""

    def __init__(self, run):
        self.run = run
        self.logged = {}

    def reason(self, exc, account_id, what="Unexpected error while billing this account"):
        """``what`` went wrong, the exception's message, and where its
        traceback is in the log."""
        first_line = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        cause = (exc.__class__.__name__, re.sub(r"[0-9]+", "N", first_line))
        ref = self.logged.get(cause)
        if ref is None:
            ref = self.logged[cause] = uuid.uuid4().hex[:8]
            logger.error(
                "bill run %s: error %s on account id %s (the chunk's other accounts failing "
                "the same way are not logged again)",
                self.run.number,
                ref,
                account_id,
                exc_info=exc,
            )
        return f"{what}: {first_line} (logged as error {ref})"


LOGGED = re.compile(r"^([^:]*): .* \(logged as error (\w+)\)$", re.DOTALL)


def _log_failures(run, chunk, failures):
    """Expected failures make one line per chunk, not one per account."""
    if not failures:
        return
    # (unexpected errors grouped by their log entry, whatever their message)
    reasons = Counter(LOGGED.sub(r"\1 (logged as error \2)", f.reason) for f in failures)
    accounts = len({failure.account_id for failure in failures})
    top = "; ".join(f"{count} × {reason}" for reason, count in reasons.most_common(3))
    more = f"; {len(reasons) - 3} other reasons" if len(reasons) > 3 else ""
    logger.info(
        "bill run %s, chunk %s: %s of %s accounts failed: %s%s",
        run.number,
        chunk.index + 1,
        accounts,
        chunk.account_count,
        top,
        more,
    )


def _accounts_in_other_runs(run, account_ids):
    """{account id: run number} for the accounts of ``account_ids`` that hold
    a Draft document of another run still Processing.

    Such an account is not billed by this run: that run may yet end in
    Error, which cancels its documents and rolls their charges back, and
    must never roll a charge back under a period this run billed after it.
    Called under the accounts' row locks, which both runs take before they
    write, so of two runs reaching one account, the second sees the first's
    documents. One indexed query, and none at all while no other run is
    Processing (the usual case)."""
    others = BillRun.objects.filter(status=RunStatus.PROCESSING, preview=False).exclude(pk=run.pk)
    if not others.exists():
        return {}
    return dict(
        Document.objects.filter(
            account_id__anyof=account_ids,
            status=DocumentStatus.DRAFT,
            bill_run__in=others,
        )
        .order_by("account_id", "bill_run_id")
        .values_list("account_id", "bill_run__number")
        .distinct()
    )


def _bill_accounts(run, account_ids, subscription_ids, advanced_ar, errors):
    """Bill ``account_ids``; return the failures recorded."""
    # Locked in id order (core.locks): concurrent runs over overlapping
    # accounts queue here instead of deadlocking, and read the charges only
    # once they hold the lock. Rows come as named tuples: a chunk reads tens
    # of thousands of charges, and model instances would cost more than the
    # billing itself.
    selected = Account.objects.filter(id__anyof=account_ids, status=Status.ACTIVE)
    if not run.preview:
        # (A preview locks nothing: it reads what is committed, and writes
        # nothing a real run reads.)
        selected = locks.locked(selected)
    accounts = list(selected.values_list(*ACCOUNT_FIELDS, named=True))
    if not accounts:
        return []
    subscriptions_by_account, charges_by_subscription = _billed_charges(accounts, subscription_ids)

    exclude = frozenset(run.exclude_charge_types)
    history = _history(charges_by_subscription)
    usage = _usage(
        accounts, subscriptions_by_account, charges_by_subscription, run, exclude, history
    )

    failures = []
    billed = []
    busy = _accounts_in_other_runs(run, [account.id for account in accounts])
    rates, untaxed = _account_rates(run_tax_rates(run), [account.id for account in accounts])
    for account in accounts:
        if account.id in busy or account.id in untaxed:
            reason = untaxed.get(account.id) or ACCOUNT_IN_ANOTHER_RUN.format(run=busy[account.id])
            failures.append(BillRunFailure(bill_run=run, account_id=account.id, reason=reason))
            continue
        # Everything computed for one account (its due date too) is computed
        # here, so that what goes wrong with one account fails it alone.
        try:
            result = engine.bill_account(
                account,
                subscriptions_by_account.get(account.id, []),
                charges_by_subscription,
                target_date=run.target_date,
                usage=usage,
                exclude=exclude,
                history=history,
                rates=rates.get(account.id, ()),
            )
            if result.items and not result.failures:
                result.due_date = engine.due_date(account, run.invoice_date)
        except engine.AccountComputationError as exc:  # the reason says it all
            failures.append(BillRunFailure(bill_run=run, account_id=account.id, reason=str(exc)))
            continue
        except Exception as exc:  # the run goes on
            failures.append(
                BillRunFailure(
                    bill_run=run, account_id=account.id, reason=errors.reason(exc, account.id)
                )
            )
            continue
        if result.failures:
            failures.extend(
                BillRunFailure(
                    bill_run=run,
                    account_id=account.id,
                    subscription_id=failure.subscription_id,
                    reason=failure.reason,
                )
                for failure in result.failures
            )
        elif result.items:
            billed.append((account, result))

    if failures:
        BillRunFailure.objects.bulk_create(failures, batch_size=WRITE_BATCH_SIZE)
    if billed:
        _write_documents(run, billed, advanced_ar)
    return failures


def run_tax_rates(run):
    """The run's snapshot of the tenant's tax rates, taken when it started
    (``services.execution``): {code: ``invoices.taxes.Rate``}. One query."""
    return {
        code: taxes.Rate(code, name, rate)
        for code, name, rate in run.tax_rates.values_list("code", "name", "rate")
    }


def current_tax_rates():
    """The tenant's tax rates as they are now, as ``run_tax_rates`` gives a
    run's: what a run starting now would use."""
    return {
        code: taxes.Rate(code, name, rate)
        for code, name, rate in TaxRate.objects.values_list("code", "name", "rate")
    }


def _account_rates(snapshot, account_ids):
    """Each account's tax rates, in the order of its tax codes, from
    ``snapshot`` (one query for all of ``account_ids``); and the reason of
    each account one of whose codes the snapshot lacks (a rate created after
    the run started): it fails rather than be billed without that tax."""
    rates = {}
    untaxed = {}
    for account_id, codes in customer_selectors.account_tax_codes(account_ids).items():
        missing = [code for code in codes if code not in snapshot]
        if missing:
            untaxed[account_id] = TAX_CODE_NOT_IN_RUN.format(codes=", ".join(missing))
        else:
            rates[account_id] = [snapshot[code] for code in codes]
    return rates, untaxed


def _billed_charges(accounts, subscription_ids):
    """The subscriptions a run bills of ``accounts`` (only
    ``subscription_ids`` when given), by account, and their charges, by
    subscription, in id order."""
    # Active subscriptions, and those a change canceled: they bill what they
    # owe before their cancel date and the adjustments their changes cause.
    billed_subscriptions = Q(status=Status.ACTIVE) | Q(cancel_date__isnull=False)
    subscriptions = Subscription.objects.filter(
        billed_subscriptions, account_id__anyof=[a.id for a in accounts]
    ).order_by("id")
    if subscription_ids:
        subscriptions = subscriptions.filter(id__in=subscription_ids)
    subscriptions_by_account = defaultdict(list)
    for subscription in subscriptions.values_list("id", "account_id", named=True):
        subscriptions_by_account[subscription.account_id].append(subscription)
    charges_by_subscription = defaultdict(list)
    charges = Charge.objects.filter(
        subscription_id__anyof=[s.id for subs in subscriptions_by_account.values() for s in subs]
    ).order_by("id")
    if subscription_ids:
        charges = charges.filter(subscription_id__in=subscription_ids)
    for charge in charges.values_list(*CHARGE_FIELDS, named=True):
        charges_by_subscription[charge.subscription_id].append(charge)
    return subscriptions_by_account, charges_by_subscription


@dataclass(frozen=True)
class _Target:
    """What ``_usage`` reads of a run: its target date."""

    target_date: datetime.date


def account_next_run(account_id, *, target_date):
    """What a run with ``target_date`` over all of the account's
    subscriptions would make for it now: its ``engine.AccountResult``
    (failures, or the items of its one document), read exactly as a chunk
    reads it (``_billed_charges``, ``_history``, ``_usage``) and priced by
    the same ``engine.bill_account``; nothing is written. None for an
    account a run does not bill (Canceled). Raises
    ``engine.AccountComputationError`` as a chunk would fail the account.

    The caller holds the account's lock (the change previews of
    billruns/changes.py: inside the transaction that applied the change),
    so the usage and items read are those a run would read."""
    accounts = list(
        Account.objects.filter(pk=account_id, status=Status.ACTIVE).values_list(
            *ACCOUNT_FIELDS, named=True
        )
    )
    if not accounts:
        return None
    subscriptions_by_account, charges_by_subscription = _billed_charges(accounts, [])
    history = _history(charges_by_subscription)
    usage = _usage(
        accounts,
        subscriptions_by_account,
        charges_by_subscription,
        _Target(target_date),
        frozenset(),
        history,
    )
    rates, untaxed = _account_rates(current_tax_rates(), [account_id])
    if untaxed:
        raise engine.AccountComputationError(untaxed[account_id])
    return engine.bill_account(
        accounts[0],
        subscriptions_by_account.get(account_id, []),
        charges_by_subscription,
        target_date=target_date,
        usage=usage,
        history=history,
        rates=rates.get(account_id, ()),
    )


LIVE_ITEM_FIELDS = (
    "id",
    "charge_id",
    "kind",
    "adjusts_id",
    "service_start",
    "service_end",
    "amount",
    "unit_price",
    "quantity",
    "pricing_id",
)


def _history(charges_by_subscription):
    """The chunk's price segments, and the live items of the charges whose
    billed items a change may have made stale: one query each (the second
    only when some charge changed).

    A charge is billed without gaps from its start to its charged-through
    date until a change reaches into what it billed: an end date or a price
    change before its charged-through date. Only such a charge needs its
    items (BILLING_RULES.md: the stale rule reads what they cover)."""
    charges = {c.id: c for subs in charges_by_subscription.values() for c in subs}
    prices = defaultdict(list)
    for row in (
        ChargePrice.objects.filter(charge_id__anyof=list(charges))
        .order_by("charge_id", "effective_date", "id")
        .values_list("charge_id", "effective_date", "amount", "quantity", "pricing_id")
    ):
        prices[row[0]].append((row[1], engine.Terms(row[2], row[3], row[4])))
    reached = [
        charge.id
        for charge in charges.values()
        if charge.charged_through_date is not None
        and (
            (charge.end_date is not None and charge.end_date < charge.charged_through_date)
            or any(day < charge.charged_through_date for day, _ in prices.get(charge.id, ()))
        )
    ]
    if not prices and not reached:
        return engine.NO_HISTORY
    live = {charge_id: [] for charge_id in reached}
    if reached:
        items = {}
        # Two queries that the two partial unique indexes serve (one filter
        # on the charges' live items would scan every item of the table, per
        # chunk): the live charge items not reversed whole (an item reversed
        # whole covers nothing: leaving it out changes no plan), then the
        # live adjustments of those. In service order, so that a charge's
        # adjustments are too (on the document and in a preview's digest).
        for row in (
            DocumentItem.objects.filter(
                charge_id__anyof=reached,
                document_canceled=False,
                fully_reversed=False,
                kind=ItemKind.CHARGE,
            )
            .order_by("charge_id", "service_start")
            .values_list(*LIVE_ITEM_FIELDS, named=True)
        ):
            charge = charges[row.charge_id]
            # Items billed before quantities were kept (unit price empty)
            # billed one of the charge's own price.
            terms = engine.Terms(
                charge.amount if row.unit_price is None else row.unit_price,
                row.quantity,
                row.pricing_id or charge.pricing_id,
            )
            if charge.charge_type == ChargeType.USAGE:
                terms = engine.Terms(None, None, row.pricing_id or charge.pricing_id)
            items[row.id] = engine.LiveItem(
                id=row.id,
                start=row.service_start,
                end=row.service_end + engine.ONE_DAY,
                amount=row.amount,
                terms=terms,
            )
            live[row.charge_id].append(items[row.id])
        adjustments = DocumentItem.objects.filter(
            adjusts_id__anyof=list(items), document_canceled=False
        ).values_list("adjusts_id", "service_start", "amount", named=True)
        for row in adjustments if items else ():
            item = items[row.adjusts_id]
            item.adjusted_from = row.service_start
            item.adjustment_amount = row.amount
    return engine.History(prices=dict(prices), live=live)


def _usage(accounts, subscriptions_by_account, charges_by_subscription, run, exclude, history):
    """The quantities of the usage the chunk's plans rate, in one grouped
    query (read under the accounts' locks, which a usage import takes too: a
    record is either in these sums or refused), and their pricings."""
    if ChargeType.USAGE in exclude:
        return engine.NO_USAGE
    ranges = []
    plans = {}
    pricing_ids = set()
    for account in accounts:
        subscriptions = subscriptions_by_account.get(account.id, ())
        for subscription in subscriptions:
            for charge in charges_by_subscription.get(subscription.id, ()):
                if charge.charge_type == ChargeType.USAGE:
                    pricing_ids.add(charge.pricing_id)
                    pricing_ids.update(
                        terms.pricing_id for _, terms in history.prices.get(charge.id, ())
                    )
                    pricing_ids.update(
                        item.terms.pricing_id for item in history.live.get(charge.id, ())
                    )
        ranges += engine.account_usage_ranges(
            account,
            subscriptions,
            charges_by_subscription,
            target_date=run.target_date,
            exclude=exclude,
            history=history,
            plans=plans,
        )
    if not pricing_ids:
        return engine.NO_USAGE
    return engine.Usage(
        quantities=customer_selectors.usage_range_quantities(ranges),
        pricings=customer_selectors.pricings(sorted(pricing_ids)),
        plans=plans,
    )


def _write_documents(run, billed, advanced_ar):
    types = [result.document_type(advanced_ar_settlement=advanced_ar) for _, result in billed]
    if run.preview:  # no number taken: a preview's documents have none
        numbers = dict.fromkeys(DocumentType, itertools.repeat(None))
    else:
        numbers = {
            DocumentType.INVOICE: iter(
                sequences.allocate("INV", types.count(DocumentType.INVOICE))
            ),
            DocumentType.CREDIT_MEMO: iter(
                sequences.allocate("CM", types.count(DocumentType.CREDIT_MEMO))
            ),
        }
    status = DocumentStatus.PREVIEW if run.preview else DocumentStatus.DRAFT
    now = timezone.now()
    documents = []
    for (account, result), document_type in zip(billed, types, strict=True):
        amount = result.document_amount(advanced_ar_settlement=advanced_ar)
        documents.append(
            {
                "document_type": document_type,
                "number": next(numbers[document_type]),
                "account_id": account.id,
                "bill_run_id": run.id,
                "currency": account.currency,
                "subtotal": result.subtotal,
                "amount": amount,
                "balance": amount,
                "invoice_date": run.invoice_date,
                "due_date": result.due_date,
                "created_at": now,
                "status": status,
            }
        )
    charged_through = {}
    reversed_whole = []
    for _, result in billed:
        reversed_whole += [item.adjusts_id for item in result.items if item.reverses_whole]
        charged_through.update(result.charged_through)
    if run.preview:
        reversed_whole, charged_through = [], {}
    if reversed_whole:
        # Before the new items: a piece billed again from the same first day
        # as the item reversed whole needs that item out of the unique index.
        DocumentItem.objects.filter(id__anyof=reversed_whole).update(fully_reversed=True)
    if connection.vendor == "postgresql":
        _insert_with_copy(documents, billed, run.preview)
    else:
        _insert_with_executemany(documents, billed, run.preview)
    _insert_taxes(documents, billed)
    if charged_through:
        set_charged_through(sorted(charged_through.items()))


def _insert_taxes(documents, billed):
    """The tax lines of the documents just inserted (they have their ids):
    COPY on PostgreSQL, executemany elsewhere, as their items."""
    rows = [
        {
            "document_id": document["id"],
            "position": position,
            "code": line.code,
            "name": line.name,
            "rate": line.rate,
            "amount": line.amount,
        }
        for document, (_, result) in zip(documents, billed, strict=True)
        for position, line in enumerate(result.taxes)
    ]
    if not rows:
        return
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            bulk.copy_rows(cursor, DocumentTax, rows, with_pk=False)
    else:
        with connection.cursor() as cursor:
            bulk.sqlite_insert_dicts(cursor, DocumentTax, rows, with_pk=False)


# The items' columns as ``_item_lines`` writes them (every concrete column
# but the id: tests/test_generation_copy.py checks that none is missing).
ITEM_COPY_COLUMNS = (
    "document_id",
    "charge_id",
    "subscription_id",
    "charge_name",
    "service_start",
    "service_end",
    "amount",
    "quantity",
    "unit",
    "unit_price",
    "rating",
    "previous_charged_through",
    "kind",
    "adjusts_id",
    "pricing_id",
    "preview",
    "document_canceled",
    "fully_reversed",
)
_NULL = "\\N"


def _item_lines(documents, billed, preview):
    """Each item of ``billed`` as a line of COPY's text format, in
    ``ITEM_COPY_COLUMNS``' order: one f-string an item, where ``copy_rows``
    made a call per value (the largest Python cost of a run: 18 columns on
    hundreds of thousands of items). Dates and Decimals print as COPY reads
    them (``str``); text is escaped."""
    escaped = bulk.CopyEscaped()
    flags = "t\tf\tf" if preview else "f\tf\tf"
    one_day = engine.ONE_DAY
    for document, (_, result) in zip(documents, billed, strict=True):
        document_id = document["id"]
        for item in result.items:
            previous = item.previous_charged_through
            yield (
                f"{document_id}\t{item.charge_id}\t{item.subscription_id}\t"
                f"{escaped[item.charge_name]}\t{item.start}\t{item.end - one_day}\t"
                f"{item.amount}\t{_NULL if item.quantity is None else item.quantity}\t"
                f"{escaped[item.unit]}\t"
                f"{_NULL if item.unit_price is None else item.unit_price}\t"
                f"{escaped[item.rating]}\t"
                f"{_NULL if previous is None else previous}\t"
                f"{escaped[item.kind]}\t{_NULL if item.adjusts_id is None else item.adjusts_id}\t"
                f"{_NULL if item.pricing_id is None else item.pricing_id}\t{flags}"
            )


def _insert_with_copy(documents, billed, preview):
    """PostgreSQL: ids from the sequences, rows by COPY (several times faster
    than bulk_create, which builds a model instance per row)."""
    with connection.cursor() as cursor:
        for document, document_id in zip(
            documents, bulk.reserve_ids(cursor, Document, len(documents)), strict=True
        ):
            document["id"] = document_id
        bulk.copy_rows(cursor, Document, documents)
        bulk.copy_table_lines(
            cursor,
            DocumentItem._meta.db_table,
            ITEM_COPY_COLUMNS,
            _item_lines(documents, billed, preview),
        )


def _item_rows(documents, billed, preview):
    """Each item of ``billed`` as a tuple in ``ITEM_COPY_COLUMNS``' order
    (SQLite's ``_item_lines``)."""
    one_day = engine.ONE_DAY
    for document, (_, result) in zip(documents, billed, strict=True):
        document_id = document["id"]
        for item in result.items:
            yield (
                document_id,
                item.charge_id,
                item.subscription_id,
                item.charge_name,
                item.start,
                item.end - one_day,
                item.amount,
                item.quantity,
                item.unit,
                item.unit_price,
                item.rating,
                item.previous_charged_through,
                item.kind,
                item.adjusts_id,
                item.pricing_id,
                preview,
                False,
                False,
            )


def _insert_with_executemany(documents, billed, preview):
    """SQLite: ids above the tables' counters (the chunk's transaction holds
    the write lock), rows by ``executemany`` of plain tuples (bulk_create
    built a model instance and compiled every value of each row: four fifths
    of a chunk's time)."""
    with connection.cursor() as cursor:
        for document, document_id in zip(
            documents, bulk.sqlite_reserve_ids(cursor, Document, len(documents)), strict=True
        ):
            document["id"] = document_id
        bulk.sqlite_insert_dicts(cursor, Document, documents)
        bulk.sqlite_insert_rows(
            cursor, DocumentItem, ITEM_COPY_COLUMNS, _item_rows(documents, billed, preview)
        )


def set_charged_through(pairs):
    """Set many charges' charged-through dates in a few statements.

    ``pairs`` is a list of (charge id, date). PostgreSQL takes them as two
    arrays in one ``UPDATE ... FROM unnest(...)``; SQLite (3.33+) as an
    ``UPDATE ... FROM (VALUES ...)`` per batch.
    """
    table = Charge._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {table} SET charged_through_date = v.through "  # noqa: S608
                "FROM unnest(%s::bigint[], %s::date[]) AS v(charge_id, through) "
                f"WHERE {table}.id = v.charge_id",
                [
                    bulk.bigint_array(charge_id for charge_id, _ in pairs),
                    bulk.date_array(through for _, through in pairs),
                ],
            )
            return
        for start in range(0, len(pairs), WRITE_BATCH_SIZE):
            batch = pairs[start : start + WRITE_BATCH_SIZE]
            values = ", ".join(["(%s, %s)"] * len(batch))
            params = [value for pair in batch for value in pair]
            cursor.execute(
                f"WITH v(charge_id, through) AS (VALUES {values}) "  # noqa: S608 - no user input
                f"UPDATE {table} SET charged_through_date = v.through "
                f"FROM v WHERE {table}.id = v.charge_id",
                params,
            )
