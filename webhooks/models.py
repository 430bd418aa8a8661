"""Webhook endpoints, the outbox of what each must be told, and every attempt
to tell it (docs/webhooks.md).

An ``Event`` row is written per event and endpoint inside the transaction of
the change it reports (the listeners of ``webhooks.receivers``), so it
commits or rolls back with the change; the task queue delivers it after the
commit, with retries, and records each try as a ``DeliveryAttempt``.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.deliveries import DeliveryStatus


class EventType(models.TextChoices):
    BILL_RUN_COMPLETED = "bill_run.completed", "bill_run.completed"
    BILL_RUN_FAILED = "bill_run.failed", "bill_run.failed"
    BILL_RUN_POSTED = "bill_run.posted", "bill_run.posted"
    BILL_RUN_CANCELED = "bill_run.canceled", "bill_run.canceled"
    DOCUMENT_POSTED = "document.posted", "document.posted"
    PAYMENT_RECORDED = "payment.recorded", "payment.recorded"


class Endpoint(models.Model):
    """A URL that receives the events it asked for, signed with its secret."""

    url = models.URLField(max_length=2000)
    # A list of EventType values, sorted, without repeats.
    events = models.JSONField(default=list)
    # whsec_ + base64 of 24 random bytes (the Standard Webhooks format):
    # needed in clear to sign, shown once when the endpoint is created.
    secret = models.CharField(max_length=100, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="webhook_endpoints",
        help_text="Told by email when the endpoint is disabled.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Set when the endpoint failed for WEBHOOK_DISABLE_AFTER (3 days)
    # straight: nothing more is sent to it until an operator enables it.
    disabled_at = models.DateTimeField(null=True, blank=True)
    # The first failure since the last success; None while it answers.
    failing_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.url} ({', '.join(self.events)})"

    @property
    def is_enabled(self):
        return self.disabled_at is None

    @property
    def secret_hint(self):
        """Enough of the secret to tell two apart, not to sign."""
        return f"{self.secret[:10]}…" if self.secret else ""


class EventStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    # Claimed by a worker talking to the endpoint (a state, not a lock held
    # during the HTTP call: see webhooks.delivery).
    SENDING = "sending", "Sending"
    DELIVERED = "delivered", "Delivered"
    # Every retry failed (more than 3 days of them): given up.
    FAILED = "failed", "Failed"


class Event(models.Model):
    """One event for one endpoint: the outbox row, and where its delivery is."""

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="outbox")
    # evt_ + 32 hex digits: the body's "id" and the webhook-id header of
    # every attempt (the same event has the same id at every endpoint).
    event_id = models.CharField(max_length=40)
    event_type = models.CharField(max_length=32, choices=EventType.choices)
    # What the event is about, once per endpoint: "bill_run.posted:17",
    # "document.posted:4242", "payment.recorded:9". A change announced twice
    # (the sweeper) writes no second row.
    subject = models.CharField(max_length=80)
    created = models.DateTimeField()
    # The JSON body exactly as sent and signed, the same bytes every attempt.
    body = models.TextField()
    status = models.CharField(
        max_length=16, choices=EventStatus.choices, default=EventStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="No attempt before this time (the retry backoff)."
    )
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "subject"], name="one_webhook_event_per_endpoint_subject"
            ),
            models.CheckConstraint(
                condition=Q(status__in=EventStatus.values), name="webhook_event_status_valid"
            ),
        ]
        indexes = [
            # The once-a-minute sender scans the events not finished.
            models.Index(
                fields=["status", "next_attempt_at"],
                condition=Q(status__in=[EventStatus.PENDING, EventStatus.SENDING]),
                name="webhook_event_unfinished",
            ),
            models.Index(fields=["event_id"], name="webhook_event_event_id"),
        ]

    def __str__(self):
        return f"{self.event_type} {self.event_id}"


class DeliveryAttempt(models.Model):
    """One HTTP request to an endpoint, whatever came of it."""

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="attempts")
    # The outbox row it tried to deliver.
    outbox = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="delivery_attempts")
    event_id = models.CharField(max_length=40)
    event_type = models.CharField(max_length=32, choices=EventType.choices)
    attempted_at = models.DateTimeField()
    # The answer's status, None when there was none (timeout, refused, DNS).
    status_code = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-attempted_at", "-id"]
        indexes = [
            models.Index(fields=["endpoint", "-attempted_at"], name="webhook_attempt_latest")
        ]

    def __str__(self):
        return f"{self.event_type} {self.event_id} → {self.status_code or self.error[:40]}"

    @property
    def succeeded(self):
        return self.status_code is not None and 200 <= self.status_code < 300


class DisabledEmail(models.Model):
    """The email telling an endpoint's owner it was disabled; sent by the task
    queue after the disabling commits, retried as a run's email is."""

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="emails")
    # Which disabling it reports: one email per disabling, however often the
    # failure that disabled it is recorded.
    disabled_at = models.DateTimeField()
    to_address = models.EmailField(blank=True)
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "disabled_at"], name="one_email_per_endpoint_disabling"
            ),
            models.CheckConstraint(
                condition=Q(status__in=DeliveryStatus.values), name="webhook_email_status_valid"
            ),
        ]

    def __str__(self):
        return f"{self.endpoint.url} disabled, to {self.to_address or '-'}"
