"""Everything that writes notices and email deliveries.

A finished run gives its owner one in-app notice and one email per outcome;
both rows are created idempotently (unique per run and outcome), and the email
is sent by the task queue with retries, never inside the engine's transaction.
"""

import datetime
import logging

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task, schedule

from billruns.models import BillRun
from billruns.review import review_summary
from core import locks
from notifications import selectors
from notifications.models import DeliveryStatus, EmailDelivery, RunNotification

logger = logging.getLogger(__name__)

SEND_TASK = "notifications.tasks.send_run_email"
REVIEW_TASK = "notifications.tasks.review_notice"

# Attempts before a delivery is given up as failed. With the backoff below
# (1, 2, 4, ... minutes, at most an hour between attempts) the eighth attempt
# comes about two hours after the first: a mail server down for an afternoon
# still gets the email out, a permanently broken setup stops trying.
MAX_EMAIL_ATTEMPTS = 8
FIRST_RETRY_DELAY = datetime.timedelta(minutes=1)
MAX_RETRY_DELAY = datetime.timedelta(hours=1)

# A delivery claimed for sending longer ago than this belongs to a worker that
# died mid-send: the re-sender takes it up again. Longer than the SMTP timeout
# plus rendering, so a slow but live worker is not doubled.
SENDING_LEASE = datetime.timedelta(seconds=getattr(settings, "EMAIL_TIMEOUT", 20) * 3 + 60)

# The re-sender leaves a delivery this long past its due time to the task
# that was queued or scheduled for it, and only then queues it again.
RESEND_GRACE = datetime.timedelta(minutes=2)
RESEND_BATCH_SIZE = 500


def retry_delay(attempts: int) -> datetime.timedelta:
    """The wait after the ``attempts``-th failed attempt: doubling, capped."""
    return min(FIRST_RETRY_DELAY * 2 ** (attempts - 1), MAX_RETRY_DELAY)


def _enqueue_send(delivery_id):
    transaction.on_commit(lambda: async_task(SEND_TASK, delivery_id, group="send_run_email"))


def run_finished_notify(*, run_id) -> EmailDelivery | None:
    """Give the owner of a finished run its notice and queue its email.

    Idempotent: the notice and the delivery are got-or-created on their
    unique keys, and the send is queued only by the call that created the
    delivery (a lost queue message is the re-sender's job). A run without an
    owner (nobody created it) notifies nobody; an owner without an email
    address gets the notice and a delivery recorded as skipped. A preview's
    owner gets the notice only: no email, no delivery.

    Transaction: one, short, for both rows; the task is queued after commit.
    """
    run = BillRun.objects.select_related("created_by", "schedule__owner").get(pk=run_id)
    recipient = selectors.run_recipient(run)
    if recipient is None:
        return None
    outcome = selectors.run_outcome(run)
    with transaction.atomic():
        notice, created = RunNotification.objects.get_or_create(
            user=recipient, bill_run=run, outcome=outcome
        )
        if created:
            # The review of a large run takes seconds: written by the queue
            # after the run's transaction commits, never inside it.
            transaction.on_commit(lambda: async_task(REVIEW_TASK, notice.pk, group="review_notice"))
        if run.preview:
            # A preview emails nobody (INTERFACES.md, Previews): the notice only.
            return None
        address = (recipient.email or "").strip()
        delivery, created = EmailDelivery.objects.get_or_create(
            bill_run=run,
            outcome=outcome,
            defaults={
                "recipient": recipient,
                "to_address": address,
                "status": DeliveryStatus.PENDING if address else DeliveryStatus.SKIPPED,
                "last_error": ""
                if address
                else f"{recipient.get_username()} has no email address.",
            },
        )
        if created and delivery.status == DeliveryStatus.PENDING:
            _enqueue_send(delivery.pk)
    return delivery


def notice_review_write(*, notification_id) -> RunNotification | None:
    """Write the run's review in brief on its owner's notice (the task
    REVIEW_TASK, queued when the notice is made). Idempotent: a notice that
    has its summary keeps it; a run not settled leaves it empty."""
    notice = RunNotification.objects.select_related("bill_run").filter(pk=notification_id).first()
    if notice is None or notice.summary:
        return notice
    found = review_summary(notice.bill_run, today=timezone.localdate())
    if found is not None:
        RunNotification.objects.filter(pk=notice.pk, summary="").update(summary=found.text)
        notice.summary = found.text
    return notice


def build_run_email(delivery: EmailDelivery) -> EmailMultiAlternatives:
    """The email of a delivery: subject, text and HTML from the template triplet."""
    context = selectors.run_email_context(delivery.bill_run, delivery.outcome)
    subject = " ".join(
        render_to_string("notifications/emails/run_finished-subject.txt", context).split()
    )
    text = render_to_string("notifications/emails/run_finished-body.txt", context)
    html = render_to_string("notifications/emails/run_finished-body.html", context)
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[delivery.to_address],
    )
    message.attach_alternative(html, "text/html")
    return message


def _claim(delivery_id, now):
    """Mark the delivery as being sent by this worker, counting the attempt;
    None when there is nothing to send now."""
    with transaction.atomic():
        delivery = locks.locked(EmailDelivery.objects.filter(pk=delivery_id)).first()
        if delivery is None:
            return None
        if delivery.status == DeliveryStatus.SENDING:
            # Another worker is sending it, unless that worker is long gone.
            if delivery.last_attempt_at and delivery.last_attempt_at > now - SENDING_LEASE:
                return None
        elif delivery.status != DeliveryStatus.PENDING:
            return None  # sent, failed or skipped: a redelivered task does nothing
        if delivery.next_attempt_at and delivery.next_attempt_at > now:
            return None  # too early: the retry scheduled for then will send it
        delivery.status = DeliveryStatus.SENDING
        delivery.attempts += 1
        delivery.last_attempt_at = now
        delivery.next_attempt_at = None
        delivery.save(update_fields=["status", "attempts", "last_attempt_at", "next_attempt_at"])
    return delivery


def email_delivery_send(*, delivery_id) -> EmailDelivery | None:
    """Send a delivery's email once; on a mail failure, record it and schedule a retry.

    Sending is claimed with a ``sending`` status rather than by holding the
    row lock while the mail server answers: the send can take EMAIL_TIMEOUT
    seconds or more, and on SQLite an open write transaction blocks every
    writer of the database (the bill run engine included) for that long. The
    claim is taken and released in short transactions under
    ``select_for_update``, so a task delivered twice finds the delivery
    ``sending`` or ``sent`` and does nothing. The one case that can send
    twice is a worker dying after the server accepted the message and before
    ``sent`` was written: past SENDING_LEASE the re-sender sends it again,
    which we prefer to an email lost for good.

    A mail failure touches only the delivery, never the run. After
    MAX_EMAIL_ATTEMPTS failed attempts the delivery is failed.
    """
    now = timezone.now()
    delivery = _claim(delivery_id, now)
    if delivery is None:
        return None
    try:
        build_run_email(delivery).send()
    except Exception as exc:
        # SMTP errors, refused connections and timeouts are OSErrors and are
        # expected; anything else (a template error, a lost database
        # connection) is logged in full but retried the same way, so a
        # delivery never stays claimed by a task that raised.
        if not isinstance(exc, OSError):
            logger.exception("building or sending email delivery %s failed", delivery_id)
        return _record_failure(delivery_id, exc)
    with transaction.atomic():
        delivery = locks.lock_one(EmailDelivery, delivery_id)
        delivery.status = DeliveryStatus.SENT
        delivery.sent_at = timezone.now()
        delivery.last_error = ""
        delivery.save(update_fields=["status", "sent_at", "last_error"])
    return delivery


def _record_failure(delivery_id, exc):
    with transaction.atomic():
        delivery = locks.lock_one(EmailDelivery, delivery_id)
        if delivery.status != DeliveryStatus.SENDING:
            return delivery
        delivery.last_error = (f"{exc.__class__.__name__}: {exc}")[:2000]
        if delivery.attempts >= MAX_EMAIL_ATTEMPTS:
            delivery.status = DeliveryStatus.FAILED
            delivery.next_attempt_at = None
        else:
            delivery.status = DeliveryStatus.PENDING
            delivery.next_attempt_at = timezone.now() + retry_delay(delivery.attempts)
        delivery.save(update_fields=["status", "last_error", "next_attempt_at"])
        if delivery.status == DeliveryStatus.PENDING:
            transaction.on_commit(lambda: _schedule_retry(delivery))
    logger.warning("email delivery %s attempt %s failed: %s", delivery_id, delivery.attempts, exc)
    return delivery


def _schedule_retry(delivery):
    """A one-off schedule at the retry time. Schedules live in the database
    whatever the broker (ORM or Redis), and the cluster's scheduler turns a
    due one into a task; a ONCE schedule deletes itself once fired. In sync
    mode (tests) nothing fires it, so a failing send does not recurse."""
    schedule(
        SEND_TASK,
        delivery.pk,
        name=f"Email delivery {delivery.pk}, attempt {delivery.attempts + 1}",
        schedule_type=Schedule.ONCE,
        next_run=delivery.next_attempt_at,
        q_options={"group": "send_run_email"},
    )


def email_deliveries_resend_due(*, now=None) -> list[int]:
    """Queue again the deliveries whose task was lost: pending past their due
    time (plus a grace left to the task or schedule made for them), or
    claimed by a worker that died mid-send. Sending checks the state under a
    lock, so queuing one that is also being sent does no harm.
    """
    now = now or timezone.now()
    due = now - RESEND_GRACE
    pending = EmailDelivery.objects.filter(status=DeliveryStatus.PENDING)
    ids = list(
        (
            pending.filter(next_attempt_at__lte=due)
            | pending.filter(next_attempt_at__isnull=True, created_at__lte=due)
            | EmailDelivery.objects.filter(
                status=DeliveryStatus.SENDING, last_attempt_at__lte=now - SENDING_LEASE
            )
        )
        .order_by("id")
        .values_list("id", flat=True)[:RESEND_BATCH_SIZE]
    )
    for delivery_id in ids:
        async_task(SEND_TASK, delivery_id, group="send_run_email")
    return ids


def notifications_mark_all_read(*, user) -> int:
    """Mark every unread notice of ``user`` read, now; returns how many.

    One set-based update of the user's unread rows (the partial index on
    unread notices finds them); a notice already read keeps its first read
    time, and other users' notices are untouched.
    """
    return RunNotification.objects.filter(user=user, read_at__isnull=True).update(
        read_at=timezone.now()
    )


def notification_mark_read(*, notification: RunNotification) -> RunNotification:
    """Mark read once (the first read time is kept); a set-based update, no lock needed."""
    if notification.read_at is None:
        now = timezone.now()
        RunNotification.objects.filter(pk=notification.pk, read_at__isnull=True).update(read_at=now)
        notification.read_at = now
    return notification
