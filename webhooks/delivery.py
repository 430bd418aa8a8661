"""Delivering the outbox: one signed HTTP POST per attempt, retries with
growing delays for more than 3 days, every attempt recorded, an endpoint
failing for 3 days straight disabled and its owner emailed.

No write transaction is held across an HTTP call: an event is claimed
(``sending``, counting the attempt) in one short transaction, the request is
made outside any, and its outcome is recorded in another. A task delivered
twice, or two workers draining one endpoint, find the event claimed or
delivered and send nothing twice. A worker that dies mid-request leaves the
event ``sending``; past SENDING_LEASE the once-a-minute sender takes it up
again (with the same webhook-id: a receiver that got it drops the repeat).
"""

import datetime
import http.client
import logging
import socket
import time
import urllib.error
import urllib.request

import standardwebhooks
from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from core import locks
from core.deliveries import DeliveryStatus
from webhooks.models import DeliveryAttempt, DisabledEmail, Endpoint, Event, EventStatus
from webhooks.services import DELIVER_TASK, checked_addresses

logger = logging.getLogger(__name__)

EMAIL_TASK = "webhooks.tasks.send_disabled_email"

# The wait after the n-th failed attempt; after the last, the event is given
# up. 5 s, 5 min, 30 min, 2 h, 5 h, then every 10 h: the 13th and last
# attempt comes about 77 hours after the first, so an endpoint that never
# answers is still being tried when it has failed for 3 days, and is
# disabled then.
RETRY_DELAYS = [
    datetime.timedelta(seconds=5),
    datetime.timedelta(minutes=5),
    datetime.timedelta(minutes=30),
    datetime.timedelta(hours=2),
    datetime.timedelta(hours=5),
    *[datetime.timedelta(hours=10)] * 7,
]
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1

# An endpoint failing this long without one success in between is disabled.
DISABLE_AFTER = datetime.timedelta(days=3)

# A claim older than this belongs to a worker that died mid-request.
SENDING_LEASE = datetime.timedelta(minutes=2)

# One drain of an endpoint stops after this long (a slow endpoint does not
# hold a worker for the task's whole timeout); the rest is left to the next
# drain or to the once-a-minute sender.
DRAIN_SECONDS = 60.0

# What the once-a-minute sender leaves to the task queued at the event's
# creation before it queues a drain itself.
RESEND_GRACE = datetime.timedelta(seconds=30)

MAX_EMAIL_ATTEMPTS = 8
MAX_ERROR_LENGTH = 2000
USER_AGENT = "billing-webhooks/1 (Standard Webhooks)"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect is an answer like any other non-2xx: following it could lead
    # to an address the endpoint's own URL was checked not to be.
    def redirect_request(self, *args, **kwargs):
        return None


def _pinned_connection(connection_class, addresses):
    """``connection_class`` (http.client's HTTP or HTTPS connection) that
    connects to one of ``addresses`` (checked: services.checked_addresses)
    instead of resolving its host again. The host stays the URL's: the Host
    header, and for HTTPS the TLS server name (SNI) and the certificate's
    check, are the hostname's."""

    class Pinned(connection_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # (http.client sets this per connection, to socket.create_connection)
            self._create_connection = self._connect_to_checked

        def _connect_to_checked(self, address, timeout, source_address=None):
            _, port = address
            last_error = None
            for ip in addresses:
                try:
                    return socket.create_connection((ip, port), timeout, source_address)
                except OSError as exc:
                    last_error = exc
            raise last_error

    return Pinned


class _PinnedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, addresses):
        super().__init__()
        self.addresses = addresses

    def http_open(self, req):
        return self.do_open(_pinned_connection(http.client.HTTPConnection, self.addresses), req)


class _PinnedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, addresses):
        super().__init__()
        self.addresses = addresses

    def https_open(self, req):
        return self.do_open(
            _pinned_connection(http.client.HTTPSConnection, self.addresses),
            req,
            context=self._context,
        )


def _opener(addresses):
    """The opener of one attempt: no redirects; with ``addresses``, connected
    to them and to no proxy (a proxy would resolve the name itself)."""
    if addresses is None:
        return urllib.request.build_opener(_NoRedirects)
    return urllib.request.build_opener(
        _NoRedirects,
        urllib.request.ProxyHandler({}),
        _PinnedHTTPHandler(addresses),
        _PinnedHTTPSHandler(addresses),
    )


def retry_delay(attempts: int) -> datetime.timedelta | None:
    """The wait after the ``attempts``-th failed attempt; None: give up."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return RETRY_DELAYS[attempts - 1]


def _due(now):
    return Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)


def _claim_next(endpoint_id, now, skip_ids):
    """The endpoint's oldest due event, claimed for this worker (status
    sending, attempt counted); None when none is due or the endpoint is
    gone or disabled."""
    with transaction.atomic():
        endpoint = Endpoint.objects.filter(pk=endpoint_id).first()
        if endpoint is None or endpoint.disabled_at is not None:
            return None, None
        candidates = Event.objects.filter(endpoint_id=endpoint_id).exclude(pk__in=skip_ids)
        due = candidates.filter(Q(status=EventStatus.PENDING) & _due(now)) | candidates.filter(
            status=EventStatus.SENDING, last_attempt_at__lte=now - SENDING_LEASE
        )
        skip = connection.vendor == "postgresql"
        event = locks.locked(due, skip_locked=skip).first()
        if event is None:
            return endpoint, None
        event.status = EventStatus.SENDING
        event.attempts += 1
        event.last_attempt_at = now
        event.next_attempt_at = None
        event.save(update_fields=["status", "attempts", "last_attempt_at", "next_attempt_at"])
    return endpoint, event


def _post(endpoint, event, now):
    """Send the event once; (status code or None, error text, milliseconds).
    The timestamp and signature are made now; the id and body are the
    event's own, the same at every attempt."""
    started = time.monotonic()
    problem, addresses = checked_addresses(endpoint.url)
    if problem:
        return None, f"Refused: {problem}", 0
    if not endpoint.url.startswith(("http://", "https://")):
        return None, "Refused: the URL is not http:// or https://.", 0
    signature = standardwebhooks.Webhook(endpoint.secret).sign(event.event_id, now, event.body)
    # The scheme is http(s), checked just above (and at creation).
    request = urllib.request.Request(  # noqa: S310
        endpoint.url,
        data=event.body.encode("utf-8"),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": event.event_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        },
    )
    status, error = None, ""
    try:
        with _opener(addresses).open(request, timeout=settings.WEBHOOK_TIMEOUT) as response:
            status = response.status
            response.read(64 * 1024)
    except urllib.error.HTTPError as exc:
        status = exc.code
        error = f"HTTP {exc.code} {exc.reason}"
        exc.close()
    except TimeoutError:
        error = f"Timed out after {settings.WEBHOOK_TIMEOUT:g} s"
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):
            error = f"Timed out after {settings.WEBHOOK_TIMEOUT:g} s"
        else:
            error = f"{exc.__class__.__name__}: {reason}"
    duration_ms = int((time.monotonic() - started) * 1000)
    if status is not None and not 200 <= status < 300 and not error:
        error = f"HTTP {status}"
    return status, error[:MAX_ERROR_LENGTH], duration_ms


def _record(endpoint, event, now, status, error, duration_ms) -> bool:
    """Record the attempt and its outcome; True when it was delivered."""
    delivered = status is not None and 200 <= status < 300
    with transaction.atomic():
        current = locks.locked(Event.objects.filter(pk=event.pk)).first()
        if current is None:
            return delivered  # the endpoint was deleted meanwhile
        DeliveryAttempt.objects.create(
            endpoint_id=endpoint.pk,
            outbox=current,
            event_id=current.event_id,
            event_type=current.event_type,
            attempted_at=now,
            status_code=status,
            duration_ms=duration_ms,
            error="" if delivered else error,
        )
        if current.status != EventStatus.SENDING or current.attempts != event.attempts:
            return delivered  # sent again meanwhile (an operator): theirs now
        if delivered:
            current.status = EventStatus.DELIVERED
            current.delivered_at = timezone.now()
            current.last_error = ""
            Endpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=False).update(
                failing_since=None
            )
        else:
            current.last_error = error
            delay = retry_delay(current.attempts)
            if delay is None:
                current.status = EventStatus.FAILED
            else:
                current.status = EventStatus.PENDING
                current.next_attempt_at = now + delay
            _endpoint_failed(endpoint.pk, now)
        current.save(update_fields=["status", "delivered_at", "last_error", "next_attempt_at"])
    return delivered


def _endpoint_failed(endpoint_id, now):
    """Note a failure of the endpoint; disable it when it has failed since
    DISABLE_AFTER ago without a success, and queue its owner's email."""
    Endpoint.objects.filter(pk=endpoint_id, failing_since__isnull=True).update(failing_since=now)
    disabled = Endpoint.objects.filter(
        pk=endpoint_id, disabled_at__isnull=True, failing_since__lte=now - DISABLE_AFTER
    ).update(disabled_at=now)
    if not disabled:
        return
    endpoint = Endpoint.objects.select_related("owner").get(pk=endpoint_id)
    logger.warning(
        "webhook endpoint %s disabled: failing since %s", endpoint.url, endpoint.failing_since
    )
    address = (endpoint.owner.email or "").strip() if endpoint.owner_id else ""
    email, created = DisabledEmail.objects.get_or_create(
        endpoint=endpoint,
        disabled_at=now,
        defaults={
            "to_address": address,
            "status": DeliveryStatus.PENDING if address else DeliveryStatus.SKIPPED,
            "last_error": "" if address else "The endpoint has no owner with an email address.",
        },
    )
    if created and email.status == DeliveryStatus.PENDING:
        transaction.on_commit(lambda: async_task(EMAIL_TASK, email.pk, group="webhooks"))


def endpoint_deliver(*, endpoint_id: int) -> int:
    """Deliver the endpoint's due events, oldest first, one at a time (the
    task DELIVER_TASK, queued after each change that wrote events for it and
    by the once-a-minute sender); returns how many were delivered.

    Stops at the first failure (the endpoint is down: its other events wait
    for the next drain rather than each waiting out a timeout now) and after
    DRAIN_SECONDS. Idempotent: only due, unclaimed events are sent.
    """
    started = time.monotonic()
    delivered = 0
    tried = []
    while time.monotonic() - started < DRAIN_SECONDS:
        now = timezone.now()
        endpoint, event = _claim_next(endpoint_id, now, tried)
        if event is None:
            break
        tried.append(event.pk)
        status, error, duration_ms = _post(endpoint, event, now)
        if not _record(endpoint, event, now, status, error, duration_ms):
            logger.info("webhook %s to %s failed: %s", event.event_id, endpoint.url, error)
            break
        delivered += 1
    return delivered


def deliveries_send_due(*, now=None) -> list[int]:
    """The once-a-minute sender: queue a drain for every enabled endpoint
    with an event due (its retry time passed, or its creation's task lost)
    or left ``sending`` by a dead worker; returns those endpoints' ids."""
    now = now or timezone.now()
    unfinished = Event.objects.filter(endpoint__disabled_at__isnull=True)
    pending = unfinished.filter(status=EventStatus.PENDING)
    endpoint_ids = sorted(
        set(
            (
                pending.filter(next_attempt_at__lte=now)
                | pending.filter(next_attempt_at__isnull=True, created__lte=now - RESEND_GRACE)
                | unfinished.filter(
                    status=EventStatus.SENDING, last_attempt_at__lte=now - SENDING_LEASE
                )
            )
            .order_by()
            .values_list("endpoint_id", flat=True)
            .distinct()
        )
    )
    for endpoint_id in endpoint_ids:
        async_task(DELIVER_TASK, endpoint_id, group="webhooks")
    emails = DisabledEmail.objects.filter(status=DeliveryStatus.PENDING).filter(
        Q(next_attempt_at__lte=now)
        | Q(next_attempt_at__isnull=True, created_at__lte=now - RESEND_GRACE)
    )
    for email_id in emails.order_by("id").values_list("id", flat=True)[:100]:
        async_task(EMAIL_TASK, email_id, group="webhooks")
    return endpoint_ids


# --- the owner's email ----------------------------------------------------------------


def disabled_email_send(*, email_id: int) -> DisabledEmail | None:
    """Send the email telling the owner their endpoint was disabled; on a
    mail failure, retry later (the once-a-minute sender), at most
    MAX_EMAIL_ATTEMPTS times. Claimed as a run's email is
    (notifications.services.email_delivery_send): never sent twice by two
    workers, never with a transaction open while the mail server answers."""
    now = timezone.now()
    with transaction.atomic():
        email = locks.locked(DisabledEmail.objects.filter(pk=email_id)).first()
        if email is None or email.status not in (DeliveryStatus.PENDING, DeliveryStatus.SENDING):
            return email
        if email.status == DeliveryStatus.SENDING and email.last_attempt_at > now - SENDING_LEASE:
            return email
        if email.next_attempt_at and email.next_attempt_at > now:
            return email
        email.status = DeliveryStatus.SENDING
        email.attempts += 1
        email.last_attempt_at = now
        email.save(update_fields=["status", "attempts", "last_attempt_at"])
    endpoint = Endpoint.objects.get(pk=email.endpoint_id)
    try:
        send_mail(
            subject=f"Webhook endpoint disabled: {endpoint.url}",
            message=(
                f"Your webhook endpoint {endpoint.url} failed every delivery since "
                f"{endpoint.failing_since:%Y-%m-%d %H:%M} UTC and was disabled on "
                f"{email.disabled_at:%Y-%m-%d %H:%M} UTC.\n\n"
                "Nothing more is sent to it. Its undelivered events are kept: once the "
                "endpoint answers again, an operator enables it in the admin "
                f"({settings.SITE_URL}/admin/webhooks/endpoint/{endpoint.pk}/change/) and "
                "they are delivered.\n"
            ),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[email.to_address],
        )
    except Exception as exc:
        if not isinstance(exc, OSError):
            logger.exception("sending webhook email %s failed", email_id)
        with transaction.atomic():
            email = locks.lock_one(DisabledEmail, email_id)
            email.last_error = f"{exc.__class__.__name__}: {exc}"[:MAX_ERROR_LENGTH]
            if email.attempts >= MAX_EMAIL_ATTEMPTS:
                email.status = DeliveryStatus.FAILED
            else:
                email.status = DeliveryStatus.PENDING
                email.next_attempt_at = timezone.now() + datetime.timedelta(
                    minutes=min(2 ** (email.attempts - 1), 60)
                )
            email.save(update_fields=["status", "last_error", "next_attempt_at"])
        return email
    with transaction.atomic():
        email = locks.lock_one(DisabledEmail, email_id)
        email.status = DeliveryStatus.SENT
        email.sent_at = timezone.now()
        email.last_error = ""
        email.save(update_fields=["status", "sent_at", "last_error"])
    return email
