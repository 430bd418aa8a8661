"""Reads of notices and deliveries shared by the header, views and emails."""

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from billruns.models import BillRun, RunStatus
from billruns.review import review_summary
from notifications.models import EmailDelivery, Outcome, RunNotification

# The email lists this many failures, then says how many more there are.
EMAIL_FAILURES_SHOWN = 20
HEADER_NOTICES_SHOWN = 10


def run_outcome(run: BillRun) -> Outcome:
    if run.status == RunStatus.ERROR:
        return Outcome.FAILED
    return Outcome.COMPLETED_WITH_ERRORS if run.has_errors else Outcome.COMPLETED


def run_recipient(run: BillRun):
    """The owner of a scheduled run's schedule, else who created the run (or None)."""
    if run.schedule_id:
        return run.schedule.owner
    return run.created_by


def run_absolute_url(run: BillRun) -> str:
    return settings.SITE_URL + reverse("billruns:detail", args=[run.number])


def run_email_context(run: BillRun, outcome: str) -> dict:
    failures = run.failures.select_related("account", "subscription").order_by("id")
    shown = list(failures[:EMAIL_FAILURES_SHOWN])
    failures_total = len(shown) if len(shown) < EMAIL_FAILURES_SHOWN else failures.count()
    return {
        "run": run,
        "outcome": Outcome(outcome),
        "outcome_label": Outcome(outcome).label,
        # (currency, total, the tax in it or None): BillRun.tax_totals.
        "totals": [
            (currency, amount, run.tax_totals.get(currency))
            for currency, amount in sorted(run.totals.items())
        ],
        "failures": shown,
        "more_failures": failures_total - len(shown),
        "run_url": run_absolute_url(run),
        "review": review_summary(run, today=timezone.localdate()),
        "review_url": run_absolute_url(run) + "?tab=review#tabs",
        "site_url": settings.SITE_URL,
    }


def user_unread_count(user) -> int:
    return RunNotification.objects.filter(user=user, read_at__isnull=True).count()


def user_latest_notices(user, limit=HEADER_NOTICES_SHOWN):
    return list(
        RunNotification.objects.filter(user=user)
        .select_related("bill_run")
        .order_by("-created_at", "-id")[:limit]
    )


def run_email_deliveries(run: BillRun):
    return EmailDelivery.objects.filter(bill_run=run).select_related("recipient")
