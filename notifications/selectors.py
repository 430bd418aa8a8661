"""Reads of notices and deliveries shared by the header, views and emails."""

from django.conf import settings
from django.core.cache import caches
from django.db.models import Count, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from billruns.models import BillRun, RunStatus
from billruns.review import review_summary
from core import pagecache, stamps
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


def _header_notices(user, limit=HEADER_NOTICES_SHOWN):
    """(unread count, latest notices) in one query: the count rides on each
    of the latest rows (a user with no notice has none unread either)."""
    unread = (
        RunNotification.objects.filter(user=user, read_at__isnull=True)
        .order_by()
        .values("user_id")
        .annotate(total=Count("id"))
        .values("total")
    )
    latest = list(
        RunNotification.objects.filter(user=user)
        .select_related("bill_run")
        .annotate(unread_total=Coalesce(Subquery(unread), 0))
        .order_by("-created_at", "-id")[:limit]
    )
    return (latest[0].unread_total if latest else 0), latest


def user_header_notices(user, request=None):
    """(unread count, latest notices) for the header, kept in the page cache
    under the change stamp (core.stamps): a page served from the cache
    reads no notices either, until any of them changes."""
    stamp = stamps.for_request(request) if request is not None else None
    if stamp is None:
        return _header_notices(user)
    return caches[pagecache.CACHE].get_or_set(
        f"notices:{user.pk}:{stamp}", lambda: _header_notices(user)
    )


def run_email_deliveries(run: BillRun):
    return EmailDelivery.objects.filter(bill_run=run).select_related("recipient")
