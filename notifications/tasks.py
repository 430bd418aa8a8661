"""Task-queue entry points: thin, each loads by id and calls a service."""

from notifications import services


def send_run_email(delivery_id):
    services.email_delivery_send(delivery_id=delivery_id)


def resend_pending_emails():
    services.email_deliveries_resend_due()
