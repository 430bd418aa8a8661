"""Writes on invoices and credit memos: posting, payments, credit applications.

A bill run's posting calls ``documents_post_for_run``; the admin and the
invoice pages call the one-document services.
Every refusal raises a ``DocumentActionRefused`` whose message names the
document, what is wrong and what is allowed; views turn it into a message,
commands into a line on stderr.
"""

import datetime
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal, InvalidOperation

from django.db import connection, transaction
from django.db.models import F, Q, Value, Window
from django.db.models.functions import RowNumber
from django.utils import timezone
from django.utils.dateparse import parse_date

from core import locks
from core.dates import payment_date_problem
from core.money import CENT
from invoices import signals
from invoices.models import (
    CreditApplication,
    Document,
    DocumentStatus,
    DocumentType,
    Payment,
    PaymentMethod,
    TenantSettings,
)

# Documents posted per UPDATE in documents_post_for_run. Each batch is one
# short transaction holding the row locks of at most this many documents; 5000
# ids are about 40 KB of query parameters (far below PostgreSQL's 65535 and
# SQLite's limits) and 100,000 documents take 20 round trips.
POST_BATCH_SIZE = 5000

# Money columns hold 18 digits, 2 after the point (customers.models.MONEY).
MAX_MONEY = Decimal("1e16")


class DocumentActionRefused(Exception):
    """An action on an invoice or credit memo that its state or the input does
    not allow. Nothing was changed."""


class PostingRefused(DocumentActionRefused):
    pass


class PaymentRefused(DocumentActionRefused):
    pass


class CreditApplicationRefused(DocumentActionRefused):
    pass


def _kind(document: Document) -> str:
    return "invoice" if document.is_invoice else "credit memo"


def _lock_document(document_id: int, refusal: type[DocumentActionRefused]) -> Document:
    try:
        return locks.lock_one(Document, document_id)
    except Document.DoesNotExist:
        raise refusal(f"There is no invoice or credit memo with id {document_id}.") from None


def _parse_money(value, *, what: str, refusal: type[DocumentActionRefused]) -> Decimal:
    """A positive amount of money with at most 2 decimal places, from a string
    or a Decimal (or int). Floats are refused: money is never a float."""
    if isinstance(value, bool) or not isinstance(value, str | Decimal | int):
        raise refusal(f"{what} {value!r} is not a number; give it as a string like '10.00'.")
    if isinstance(value, str):
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            raise refusal(f"{what} {value!r} is not a number.") from None
    else:
        amount = Decimal(value)
    if not amount.is_finite():
        raise refusal(f"{what} {value!r} is not a number.")
    if amount <= 0:
        raise refusal(f"{what} must be greater than 0, not {amount}.")
    if amount >= MAX_MONEY:
        raise refusal(f"{what} {amount} is too large.")
    if amount != amount.quantize(CENT):
        raise refusal(f"{what} {amount} has more than 2 decimal places.")
    return amount.quantize(CENT)


def _parse_date(value, *, what: str, refusal: type[DocumentActionRefused]) -> datetime.date:
    # A datetime is a date too, but which day it means depends on a time zone:
    # the caller must say.
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value
    if isinstance(value, str):
        try:
            parsed = parse_date(value.strip())
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed
    raise refusal(f"{what} {value!r} is not a valid date (YYYY-MM-DD).")


# Rules that the app owning a document's bill run adds to the posting of one
# document (billruns registers one in its AppConfig.ready: a document of a run
# still generating or being canceled is not posted on its own). A check is
# called as ``check(document, lock=...)`` with the Document as read without a
# lock, and returns why it may not be posted, or "". With ``lock`` it runs in
# document_post's transaction, before the document is locked, and locks what
# it reads (core.locks: a run before its documents). This app knows no run.
_document_post_checks = []


def register_document_post_check(check) -> None:
    """Add ``check`` to the rules of ``document_post`` (once, however often
    it is registered)."""
    if check not in _document_post_checks:
        _document_post_checks.append(check)


def document_post_refusal(document: Document, *, lock: bool = False) -> str:
    """Why a registered check refuses to post ``document``, or "". A page asks
    it (without ``lock``) before it offers to post the document."""
    for check in _document_post_checks:
        reason = check(document, lock=lock)
        if reason:
            return reason
    return ""


def document_post(*, document_id: int, user) -> Document:
    """Post one Draft invoice, or one Draft credit memo when Advanced AR
    Settlement is on: status Posted, posted_at now, posted_by ``user``, open
    balance = amount. Refused when a registered check refuses (billruns:
    while the document's bill run is not Completed, PostInProgress or
    Posted).

    Transaction: one short ``transaction.atomic``. Locking: what the checks
    lock (billruns: the bill run's row), then the document's row; the
    statuses are checked under the locks, so of two clerks posting the same
    document at once, one posts it and the other is refused, and a cancel of
    the run and the posting of one of its documents exclude each other.
    Idempotency: posting a Posted document is refused (``PostingRefused``,
    "already Posted") and changes nothing.
    """
    with transaction.atomic():
        unlocked = Document.objects.filter(pk=document_id).first()
        refusal = document_post_refusal(unlocked, lock=True) if unlocked is not None else ""
        if refusal:
            raise PostingRefused(refusal)
        document = _lock_document(document_id, PostingRefused)
        if document.status == DocumentStatus.POSTED:
            raise PostingRefused(
                f"{document.number} is already Posted: only Draft documents can be posted."
            )
        if document.status != DocumentStatus.DRAFT:
            raise PostingRefused(
                f"{document.number} is {document.status}: only Draft documents can be posted."
            )
        if (
            document.document_type == DocumentType.CREDIT_MEMO
            and not TenantSettings.current().advanced_ar_settlement
        ):
            raise PostingRefused(
                f"{document.number} is a credit memo: credit memos can only be posted "
                "while Advanced AR Settlement is on."
            )
        document.status = DocumentStatus.POSTED
        document.posted_at = timezone.now()
        document.posted_by = user
        document.balance = document.amount
        document.save(update_fields=["status", "posted_at", "posted_by", "balance"])
        signals.document_posted.send(sender=Document, document=document, user=user)
    return document


def documents_post_for_run(
    *,
    bill_run_id: int,
    user,
    include_credit_memos: bool,
    batch_size: int = POST_BATCH_SIZE,
    workers: int = 1,
    after_batch=None,
) -> int:
    """Post the run's Draft invoices, and its Draft credit memos when
    ``include_credit_memos``; return how many were posted.

    Set-based: one query finds the id that starts each batch of
    ``batch_size`` drafts, and each batch is posted by one ``UPDATE ...
    WHERE id >= start AND id < next start AND status = 'Draft'``. With
    ``workers`` > 1 on PostgreSQL (outside any transaction) the batches are
    shared among that many threads, each with its own connection: the
    UPDATEs are the database's work, and two backends do it on two cores.
    Otherwise they are posted one after the other, and ``after_batch``, when
    given, is called with each batch's number (1, 2, ...) once that batch
    has committed: the caller can follow the posting, or stop it part-way by
    raising.

    Transaction: each batch in its own short ``transaction.atomic`` (call this
    outside a transaction, else the batches commit with the caller's). A
    document is posted entirely or not at all; if a batch fails, the batches
    already done stay posted and the exception propagates.
    Locking: the UPDATE locks its rows; its ``status = 'Draft'`` condition is
    re-evaluated on rows another transaction changed meanwhile, so a document
    posted or canceled concurrently is left alone and never posted twice.
    Idempotency: Posted and Canceled documents are untouched, so calling it
    again after a failure posts the rest, and calling it on a posted run
    posts nothing and returns 0.
    """
    types = [DocumentType.INVOICE]
    if include_credit_memos:
        types.append(DocumentType.CREDIT_MEMO)
    drafts = Document.objects.filter(
        bill_run_id=bill_run_id, status=DocumentStatus.DRAFT, document_type__in=types
    )
    starts = list(
        drafts.annotate(position=Window(RowNumber(), order_by=F("id").asc()))
        .annotate(offset=(F("position") - 1) % batch_size)
        .filter(offset=0)
        .order_by("id")
        .values_list("id", flat=True)
    )
    if not starts:
        return 0
    ranges = list(zip(starts, [*starts[1:], None], strict=True))
    user_id = user.pk if user is not None else None

    def post_range(first_id, next_start):
        in_range = (
            Q(id__gte=first_id) if next_start is None else Q(id__gte=first_id, id__lt=next_start)
        )
        batch = drafts.filter(in_range)
        posted_at = timezone.now()
        with transaction.atomic():
            posted = batch.update(
                status=DocumentStatus.POSTED,
                posted_at=posted_at,
                posted_by_id=user_id,
                balance=F("amount"),
            )
            if posted:
                # One announcement per batch; the ids are a lazy query (the
                # rows this UPDATE posted, under its locks), read only by a
                # listener that needs them.
                signals.documents_posted.send(
                    sender=Document,
                    bill_run_id=bill_run_id,
                    document_ids=Document.objects.filter(
                        in_range,
                        bill_run_id=bill_run_id,
                        status=DocumentStatus.POSTED,
                        posted_at=posted_at,
                    )
                    .order_by("id")
                    .values_list("id", flat=True),
                    user=user,
                )
            return posted

    if workers > 1 and len(ranges) > 1 and _can_post_in_parallel():
        return _post_in_parallel(ranges, post_range, workers)
    posted = 0
    for batch_number, (first_id, next_start) in enumerate(ranges, start=1):
        posted += post_range(first_id, next_start)
        if after_batch is not None:
            after_batch(batch_number)
    return posted


def _can_post_in_parallel():
    # Other threads have other connections: they can neither see this
    # connection's uncommitted rows nor share SQLite's single writer.
    return connection.vendor == "postgresql" and not connection.in_atomic_block


def _post_in_parallel(ranges, post_range, workers):
    def post_share(share):
        try:
            return sum(post_range(first_id, next_start) for first_id, next_start in share)
        finally:
            connection.close()

    shares = [ranges[index::workers] for index in range(workers)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(post_share, share) for share in shares if share]
        results = [future.exception() or future.result() for future in futures]
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return sum(results)


def payment_record(
    *,
    document_id: int,
    amount: str | Decimal,
    payment_date: str | datetime.date,
    method: str,
    reference: str = "",
    user,
    request_key: uuid.UUID | None = None,
) -> Payment:
    """Record a payment on a Posted invoice and lower its open balance.

    ``amount``: a string or Decimal, > 0, at most 2 decimal places, at most the
    open balance. ``payment_date``: a date or ``YYYY-MM-DD``. ``method``: a
    ``PaymentMethod`` value. Anything else is refused (``PaymentRefused``).

    Transaction: one short ``transaction.atomic`` inserts the payment and
    lowers the balance with ``F()``. Locking: the invoice's row,
    ``select_for_update``; the balance is re-checked under the lock, and the
    UPDATE also requires ``balance >= amount``, so concurrent payments never
    overdraw. Idempotency: by ``request_key`` (the payment form's key): a
    call with the key of a payment already recorded on this invoice returns
    that payment and changes nothing; without a key each call records one.
    """
    amount = _parse_money(amount, what="Payment amount", refusal=PaymentRefused)
    payment_date = _parse_date(payment_date, what="Payment date", refusal=PaymentRefused)
    date_problem = payment_date_problem(payment_date)
    if date_problem:
        raise PaymentRefused(f"The payment date {date_problem}.")
    if method not in PaymentMethod.values:
        raise PaymentRefused(
            f"Payment method {method!r} is not one of: {', '.join(PaymentMethod.values)}."
        )
    reference = (reference or "").strip()
    reference_max = Payment._meta.get_field("reference").max_length
    if len(reference) > reference_max:
        raise PaymentRefused(f"Payment reference is longer than {reference_max} characters.")

    with transaction.atomic():
        document = _lock_document(document_id, PaymentRefused)
        # Under the invoice's lock: a second submit of the same form waits
        # for the first, then finds its payment.
        earlier = _earlier_request(
            Payment.objects.filter(document_id=document_id), request_key, PaymentRefused
        )
        if earlier is not None:
            return earlier
        if not document.is_invoice:
            raise PaymentRefused(
                f"{document.number} is a credit memo: payments can only be recorded "
                "against Posted invoices."
            )
        if document.status != DocumentStatus.POSTED:
            raise PaymentRefused(
                f"{document.number} is {document.status}: payments can only be recorded "
                "against Posted invoices."
            )
        if amount > document.balance:
            raise PaymentRefused(
                f"Payment of {amount} exceeds the open balance {document.balance} "
                f"{document.currency} of {document.number}."
            )
        payment = Payment.objects.create(
            document=document,
            amount=amount,
            payment_date=payment_date,
            method=method,
            reference=reference,
            created_by=user,
            request_key=request_key,
        )
        _lower_balance(document, amount, PaymentRefused)
        signals.payment_recorded.send(sender=Payment, payment=payment, document=document, user=user)
    return payment


def _earlier_request(same_documents, request_key, refusal):
    """The payment or credit application already made with ``request_key``
    (``same_documents``: those of this call's documents), or None; refused
    when that key was used for other documents."""
    if request_key is None:
        return None
    earlier = same_documents.model.objects.filter(request_key=request_key).first()
    if earlier is None:
        return None
    if not same_documents.filter(pk=earlier.pk).exists():
        raise refusal("This form was already used for another document; open it again.")
    return earlier


def _lower_balance(
    document: Document, amount: Decimal, refusal: type[DocumentActionRefused]
) -> None:
    # The row is locked and its balance was checked; the condition on the
    # UPDATE makes the database refuse an overdraft whatever the caller did.
    # The amount goes into SQL as the column's own type: on SQLite the
    # balance is integer cents, and a bare Decimal would be bound as text.
    amount_sql = Value(amount, output_field=Document._meta.get_field("balance"))
    updated = Document.objects.filter(pk=document.pk, balance__gte=amount).update(
        balance=F("balance") - amount_sql
    )
    if updated != 1:
        raise refusal(f"{amount} exceeds the open balance of {document.number}.")
    document.balance -= amount


def credit_memo_apply(
    *,
    credit_memo_id: int,
    invoice_id: int,
    amount: str | Decimal,
    user,
    request_key: uuid.UUID | None = None,
) -> CreditApplication:
    """Apply part of a Posted credit memo to a Posted invoice of the same
    account and currency, lowering both open balances by ``amount``.

    Only while Advanced AR Settlement is on. ``amount``: a string or Decimal,
    > 0, at most 2 decimal places, at most both open balances. Refusals raise
    ``CreditApplicationRefused``.

    Transaction: one short ``transaction.atomic``. Locking: both rows,
    ``select_for_update`` in id order, so two applications touching the same
    pair from opposite ends cannot deadlock; balances are checked under the
    locks. Idempotency: by ``request_key`` (the apply form's key), as
    payment_record; without a key each call applies ``amount`` once more.
    """
    if credit_memo_id == invoice_id:
        raise CreditApplicationRefused("A credit memo cannot be applied to itself.")
    amount = _parse_money(amount, what="Credit amount", refusal=CreditApplicationRefused)

    with transaction.atomic():
        if not TenantSettings.current().advanced_ar_settlement:
            raise CreditApplicationRefused(
                "Credit memos can only be applied while Advanced AR Settlement is on."
            )
        locked = {
            document.pk: document
            for document in locks.locked(
                Document.objects.filter(pk__in=[credit_memo_id, invoice_id])
            )
        }
        for document_id in (credit_memo_id, invoice_id):
            if document_id not in locked:
                raise CreditApplicationRefused(
                    f"There is no invoice or credit memo with id {document_id}."
                )
        credit_memo, invoice = locked[credit_memo_id], locked[invoice_id]
        earlier = _earlier_request(
            CreditApplication.objects.filter(credit_memo_id=credit_memo_id, invoice_id=invoice_id),
            request_key,
            CreditApplicationRefused,
        )
        if earlier is not None:
            return earlier
        if credit_memo.document_type != DocumentType.CREDIT_MEMO:
            raise CreditApplicationRefused(
                f"{credit_memo.number} is an invoice: only a credit memo can be applied."
            )
        if not invoice.is_invoice:
            raise CreditApplicationRefused(
                f"{invoice.number} is a credit memo: a credit memo can only be applied "
                "to an invoice."
            )
        for document in (credit_memo, invoice):
            if document.status != DocumentStatus.POSTED:
                raise CreditApplicationRefused(
                    f"{document.number} is {document.status}: credit can only be applied "
                    "from a Posted credit memo to a Posted invoice."
                )
        if credit_memo.account_id != invoice.account_id:
            raise CreditApplicationRefused(
                f"{credit_memo.number} and {invoice.number} belong to different accounts: "
                "a credit memo can only be applied to an invoice of its own account."
            )
        if credit_memo.currency != invoice.currency:
            raise CreditApplicationRefused(
                f"{credit_memo.number} is in {credit_memo.currency} and {invoice.number} "
                f"in {invoice.currency}: credit can only be applied in the same currency."
            )
        for document in (credit_memo, invoice):
            if amount > document.balance:
                raise CreditApplicationRefused(
                    f"Credit of {amount} exceeds the open balance {document.balance} "
                    f"{document.currency} of {_kind(document)} {document.number}."
                )
        application = CreditApplication.objects.create(
            credit_memo=credit_memo,
            invoice=invoice,
            amount=amount,
            applied_by=user,
            request_key=request_key,
        )
        _lower_balance(credit_memo, amount, CreditApplicationRefused)
        _lower_balance(invoice, amount, CreditApplicationRefused)
    return application
