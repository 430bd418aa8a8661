"""Emailing posted invoices and credit memos to their bill-to contacts.

Each document goes to its account's ``bill_to_email`` with its PDF attached,
and every try is recorded as a ``DocumentDelivery`` on the document. The
emailing of a run's documents (``notifications.documents``) calls
``documents_email`` with their ids; it knows nothing of runs.
"""

import logging
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.utils import timezone

from core import locks
from core.money import format_money, format_plain
from invoices.models import DeliveryStatus, Document, DocumentDelivery, DocumentStatus
from invoices.pdf import PdfUnavailable, document_pdf, document_pdf_filename
from invoices.selectors import document_taxes

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmailOutcome:
    """How many documents were emailed, passed over, or failed to send."""

    sent: int = 0
    skipped: int = 0
    failed: int = 0

    def __add__(self, other: "EmailOutcome") -> "EmailOutcome":
        return EmailOutcome(
            sent=self.sent + other.sent,
            skipped=self.skipped + other.skipped,
            failed=self.failed + other.failed,
        )

    def __str__(self):
        return f"sent {self.sent}, skipped {self.skipped}, failed {self.failed}"


def document_email_subject(document: Document) -> str:
    kind = "Invoice" if document.is_invoice else "Credit memo"
    return f"{kind} {document.number} from {settings.BILLING_ISSUER.splitlines()[0]}"


def _tax_lines(document: Document) -> list[str]:
    """The subtotal and each tax line with its rate, as the document shows
    them (a credit memo's as credits); none for a document without tax."""
    taxes = document_taxes(document)
    if not taxes:
        return []
    return [
        f"Subtotal: {format_money(document.shown_subtotal, document.currency)}",
        *(
            f"{tax.name} ({tax.code}, {format_plain(tax.rate)}%): "
            f"{format_money(tax.shown, document.currency)}"
            for tax in taxes
        ),
    ]


def _body(document: Document) -> str:
    amount = format_money(document.amount, document.currency)
    if document.is_invoice:
        lines = [
            f"Please find attached invoice {document.number} dated "
            f"{document.invoice_date.isoformat()}.",
            "",
            *_tax_lines(document),
            f"Amount: {amount}",
            f"Due date: {document.due_date.isoformat()}",
        ]
    else:
        lines = [
            f"Please find attached credit memo {document.number} dated "
            f"{document.invoice_date.isoformat()}.",
            "",
            *_tax_lines(document),
            f"Credit: {amount}",
        ]
    lines += ["", f"Account {document.account.number}, {document.account.name}"]
    return "\n".join(lines) + "\n"


def _already_sent(document_id: int, *, resend_request: uuid.UUID | None) -> bool:
    """Sent already: for a first delivery, by any delivery; for a resend, by
    this resend request's own row."""
    sent = DocumentDelivery.objects.filter(document_id=document_id, status=DeliveryStatus.SENT)
    if resend_request is not None:
        sent = sent.filter(resend=True, resend_request=resend_request)
    return sent.exists()


def _skip_reason(document: Document, *, skip_zero_amount: bool) -> str:
    if skip_zero_amount and document.is_invoice and document.amount == 0:
        return "Zero-amount invoice: not emailed (no email for zero-amount invoices)."
    if not document.account.bill_to_email.strip():
        return f"Account {document.account.number} has no bill-to contact."
    return ""


def _delivery_to_write(
    *, document: Document, resend_request: uuid.UUID | None, requested_by
) -> DocumentDelivery:
    """The row this try is recorded on: the document's one first-delivery
    row, or its row for this resend request, with the earlier failed or
    skipped tries; a new row when there is none yet."""
    resend = resend_request is not None
    earlier = DocumentDelivery.objects.filter(
        document=document, resend=resend, resend_request=resend_request
    ).first()
    if earlier is not None:
        earlier.requested_by = requested_by
        return earlier
    return DocumentDelivery(
        document=document, resend=resend, resend_request=resend_request, requested_by=requested_by
    )


def _email_one(
    *, document_id: int, resend_request: uuid.UUID | None, skip_zero_amount: bool, requested_by
) -> str:
    """Email one document; the DeliveryStatus of this try, or "" when there
    was nothing to do (not Posted, or already sent by this request or, for a
    first delivery, at all)."""
    document = Document.objects.select_related("account").filter(pk=document_id).first()
    if document is None or document.status != DocumentStatus.POSTED:
        return ""
    if _already_sent(document_id, resend_request=resend_request):
        return ""
    skip_reason = _skip_reason(document, skip_zero_amount=skip_zero_amount)
    # The PDF is rendered before the lock is taken: it is the slow part, and
    # rendering it for a document another worker sends meanwhile only wastes
    # a little work.
    pdf, render_error = b"", ""
    if not skip_reason:
        try:
            pdf = document_pdf(document=document)
        except PdfUnavailable as exc:
            render_error = str(exc)

    with transaction.atomic():
        # The document's row lock makes "not sent yet? then send" one step:
        # of two calls emailing the same document at once, the second waits
        # here, then sees the first one's 'sent' row and sends nothing. The
        # lock is held while the mail server takes the message (at most
        # EMAIL_TIMEOUT); only other writes to this one document wait.
        document = locks.locked(
            Document.objects.select_related("account").filter(pk=document_id)
        ).get()
        if document.status != DocumentStatus.POSTED:
            return ""
        if _already_sent(document_id, resend_request=resend_request):
            return ""
        delivery = _delivery_to_write(
            document=document, resend_request=resend_request, requested_by=requested_by
        )
        delivery.to_address = document.account.bill_to_email.strip()
        if skip_reason:
            delivery.status = DeliveryStatus.SKIPPED
            delivery.last_error = skip_reason
        elif render_error:
            delivery.attempts += 1
            delivery.status = DeliveryStatus.FAILED
            delivery.last_error = render_error
        else:
            delivery.attempts += 1
            message = EmailMessage(
                subject=document_email_subject(document),
                body=_body(document),
                from_email=settings.DEFAULT_FROM_EMAIL,
                to=[delivery.to_address],
            )
            message.attach(document_pdf_filename(document), pdf, "application/pdf")
            try:
                message.send()
            except OSError as exc:  # smtplib.SMTPException is an OSError too
                logger.warning("emailing %s to %s failed: %s", document, delivery.to_address, exc)
                delivery.status = DeliveryStatus.FAILED
                delivery.last_error = str(exc) or exc.__class__.__name__
            else:
                delivery.status = DeliveryStatus.SENT
                delivery.last_error = ""
                delivery.sent_at = timezone.now()
        delivery.save()
    return delivery.status


def documents_email(
    *,
    document_ids,
    resend: bool,
    skip_zero_amount: bool,
    requested_by,
    resend_request: uuid.UUID | None = None,
) -> EmailOutcome:
    """Email each Posted document of ``document_ids`` to its account's
    bill-to contact, with its PDF attached, and record each try.

    Never twice: a document that has a 'sent' delivery is passed over unless
    ``resend``. A resend is one request, named by ``resend_request`` (a new
    key when not given): each document is resent once per request, so the
    same request made again (a task delivered twice, a form submitted twice,
    a retry after a failure) sends only what it has not sent yet. Passed
    over too (and counted as skipped): documents that are not Posted;
    zero-amount invoices when ``skip_zero_amount`` and accounts without a
    bill-to address (both recorded as a 'skipped' delivery with the
    reason). A mail server error (any OSError) is recorded as a 'failed'
    delivery with the error, and the other documents are still emailed; a
    later call tries a failed or skipped document again on the same row.

    Transaction and locking: one short transaction per document, holding
    that document's row lock (``select_for_update``) from the "already
    sent?" check until its delivery is recorded, so concurrent calls send
    each document once. Call it outside any transaction of yours: a caller's
    transaction would hold every lock until it ends.
    """
    if not resend:
        resend_request = None
    elif resend_request is None:
        resend_request = uuid.uuid4()
    sent = skipped = failed = 0
    for document_id in document_ids:
        status = _email_one(
            document_id=document_id,
            resend_request=resend_request,
            skip_zero_amount=skip_zero_amount,
            requested_by=requested_by,
        )
        if status == DeliveryStatus.SENT:
            sent += 1
        elif status == DeliveryStatus.FAILED:
            failed += 1
        else:
            skipped += 1
    return EmailOutcome(sent=sent, skipped=skipped, failed=failed)
