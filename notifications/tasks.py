"""Task-queue entry points: thin, each loads by id and calls a service."""

import uuid

from django.contrib.auth import get_user_model

from notifications import documents, services


def send_run_email(delivery_id):
    services.email_delivery_send(delivery_id=delivery_id)


def review_notice(notification_id):
    services.notice_review_write(notification_id=notification_id)


def resend_pending_emails():
    services.email_deliveries_resend_due()


def email_run_documents(run_id, user_id=None, resend=False, resend_request=None):
    """Queued when an auto-email run is Posted (no user) and by a clerk's
    Email action (billruns.services.bill_run_email, which also runs it in
    its own process and prints what it returns: ``billrun email``). A
    redelivery sends nothing twice: a resend carries the key of its request,
    and each document is resent once per key."""
    user = get_user_model().objects.filter(pk=user_id).first() if user_id is not None else None
    return documents.run_documents_email(
        run_id=run_id,
        user=user,
        resend=resend,
        resend_request=uuid.UUID(resend_request) if resend_request else None,
    )
