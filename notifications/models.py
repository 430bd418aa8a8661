"""What a finished bill run leaves for its owner: an in-app notice and an email.

Both are keyed by (run, outcome), so the database, not the code, makes a run
announced twice give one notice and one email.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.deliveries import DeliveryStatus


class Outcome(models.TextChoices):
    COMPLETED = "completed", "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors", "completed with errors"
    FAILED = "failed", "failed"


class RunNotification(models.Model):
    """The header's notice that a run the user owns has ended."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="run_notifications"
    )
    bill_run = models.ForeignKey(
        "billruns.BillRun", on_delete=models.CASCADE, related_name="notifications"
    )
    outcome = models.CharField(max_length=32, choices=Outcome.choices)
    # The run's review in brief when it ended (billruns.review.ReviewSummary).
    summary = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "bill_run", "outcome"], name="one_notice_per_user_run_outcome"
            ),
        ]
        indexes = [
            # Every page's header counts the user's unread notices.
            models.Index(
                fields=["user"], condition=Q(read_at__isnull=True), name="notice_unread_by_user"
            ),
            models.Index(fields=["user", "-created_at"], name="notice_latest_by_user"),
        ]

    def __str__(self):
        return f"{self.bill_run} {self.get_outcome_display()}"

    @property
    def is_unread(self):
        return self.read_at is None


class EmailDelivery(models.Model):
    """One email announcing a run's outcome, and every attempt to send it."""

    bill_run = models.ForeignKey(
        "billruns.BillRun", on_delete=models.CASCADE, related_name="email_deliveries"
    )
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="run_email_deliveries",
    )
    to_address = models.EmailField(blank=True)
    outcome = models.CharField(max_length=32, choices=Outcome.choices)
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="No attempt before this time (the retry backoff)."
    )
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "email deliveries"
        constraints = [
            # One outcome gives one email, however often the run is announced.
            models.UniqueConstraint(
                fields=["bill_run", "outcome"], name="one_email_per_run_outcome"
            ),
            models.CheckConstraint(
                condition=Q(status__in=DeliveryStatus.values), name="email_delivery_status_valid"
            ),
        ]
        indexes = [
            # The re-sender scans the deliveries that are not finished.
            models.Index(
                fields=["status", "next_attempt_at"],
                condition=Q(status__in=[DeliveryStatus.PENDING, DeliveryStatus.SENDING]),
                name="email_delivery_unfinished",
            ),
        ]

    def __str__(self):
        return f"{self.bill_run} {self.get_outcome_display()} to {self.to_address or '-'}"
