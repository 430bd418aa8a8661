"""The status of one email delivery, for every app that emails: a customer's
document (invoices.DocumentDelivery, sent under its document's lock, so only
sent, failed or skipped) and a run's outcome to its owner
(notifications.EmailDelivery, sent by the task queue with retries, so also
pending and sending)."""

from django.db import models


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    # Claimed by a worker that is talking to the mail server (see
    # notifications.services.email_delivery_send for why this is a state and
    # not a lock held during the send).
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
