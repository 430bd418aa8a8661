"""Webhook endpoints and the outbox: creating and deleting endpoints, and
writing one event row per event and endpoint in the transaction of the change
it reports (the listeners in ``webhooks.receivers`` call these).

Delivery (HTTP, retries, disabling) is ``webhooks.delivery``.
"""

import base64
import ipaddress
import json
import secrets
import socket
import uuid
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from webhooks.models import Endpoint, Event, EventType

DELIVER_TASK = "webhooks.tasks.deliver_endpoint"

# Outbox rows written per INSERT (a posting batch of 5000 documents to one
# endpoint is a few statements).
WRITE_BATCH_SIZE = 1000


# --- endpoints ------------------------------------------------------------------------


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def _private_reason(address: str) -> str:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if getattr(ip, "ipv4_mapped", None):
        ip = ip.ipv4_mapped
    for attribute, what in (
        ("is_loopback", "a loopback"),
        ("is_link_local", "a link-local"),
        ("is_private", "a private"),
        ("is_unspecified", "an unspecified"),
        ("is_multicast", "a multicast"),
        ("is_reserved", "a reserved"),
    ):
        if getattr(ip, attribute):
            return f"{what} address ({ip})"
    return ""


def checked_addresses(url: str, *, unresolved_ok: bool = False) -> tuple[str, list[str] | None]:
    """(why ``url`` may not be called from here or "", the addresses its
    host resolved to, all checked). With DEBUG off and WEBHOOK_ALLOW_PRIVATE
    off, a host that resolves (any of its addresses) to a loopback, private,
    link-local, multicast or reserved address is refused, and so is one that
    does not resolve unless ``unresolved_ok`` (at creation: its DNS may come
    later; every delivery asks again, so a name that comes to resolve to a
    private address is refused then). The addresses are None when nothing
    was checked (private addresses allowed, or unresolved): a delivery
    connects to one of them, never resolving the name again, so that a name
    whose DNS answers a public address to the check and a private one to
    the connection (DNS rebinding) does not reach the private one."""
    if settings.DEBUG or settings.WEBHOOK_ALLOW_PRIVATE:
        return "", None
    host = urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        return ("" if unresolved_ok else f"its host {host} does not resolve ({exc})."), None
    addresses = []
    for info in infos:
        address = info[4][0]
        reason = _private_reason(address)
        if reason:
            return (
                f"its host {host} resolves to {reason}: private addresses are refused "
                "(set WEBHOOK_ALLOW_PRIVATE to allow them)."
            ), None
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        return ("" if unresolved_ok else f"its host {host} resolves to no address."), None
    return "", addresses


def private_address_problem(url: str, *, unresolved_ok: bool = False) -> str:
    """Why ``url`` may not be called from here, or "" (``checked_addresses``)."""
    return checked_addresses(url, unresolved_ok=unresolved_ok)[0]


def clean_url(url) -> str:
    if not isinstance(url, str) or not url.strip():
        raise ValidationError({"url": ["Give the endpoint's URL (http:// or https://)."]})
    url = url.strip()
    max_length = Endpoint._meta.get_field("url").max_length
    if len(url) > max_length:
        raise ValidationError({"url": [f"The URL is longer than {max_length} characters."]})
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError:
        raise ValidationError(
            {"url": [f"{url!r} is not a valid http:// or https:// URL."]}
        ) from None
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise ValidationError({"url": ["The URL may not contain a user name or password."]})
    if parts.fragment:
        raise ValidationError({"url": ["The URL may not contain a fragment (#...)."]})
    problem = private_address_problem(url, unresolved_ok=True)
    if problem:
        raise ValidationError({"url": [f"The URL is refused: {problem}"]})
    return url


def clean_events(events) -> list[str]:
    known = ", ".join(EventType.values)
    if not isinstance(events, list | tuple) or not events:
        raise ValidationError({"events": [f"Give a list of one or more event types: {known}."]})
    for event in events:
        if not isinstance(event, str) or event not in EventType.values:
            raise ValidationError(
                {"events": [f"{event!r} is not an event type; the event types are: {known}."]}
            )
    return sorted(set(events))


def endpoint_create(url, events, owner) -> tuple[Endpoint, str]:
    """A new endpoint for ``events`` at ``url``, owned by ``owner`` (a user,
    told by email if the endpoint is disabled; None for nobody); returns it
    with its secret (``whsec_...``), to be shown once.

    Refused with a ``ValidationError`` keyed by field (``url``, ``events``)
    for a URL that is not http(s), has credentials, or (DEBUG off, no
    WEBHOOK_ALLOW_PRIVATE) resolves to a private address, and for an empty
    list or an unknown event type. Nothing is written then.
    """
    url = clean_url(url)
    events = clean_events(events)
    secret = new_secret()
    endpoint = Endpoint.objects.create(url=url, events=events, secret=secret, owner=owner)
    return endpoint, secret


def endpoint_delete(endpoint: Endpoint) -> None:
    """Delete the endpoint with its outbox and attempts: nothing more is sent
    to it (a delivery already talking to it finishes, and finds nothing to
    record)."""
    Endpoint.objects.filter(pk=endpoint.pk).delete()


def endpoint_enable(endpoint: Endpoint) -> Endpoint:
    """Enable a disabled endpoint again (the admin): its failures are
    forgotten and its pending events are due now."""
    with transaction.atomic():
        Endpoint.objects.filter(pk=endpoint.pk).update(disabled_at=None, failing_since=None)
        Event.objects.filter(endpoint=endpoint, status="pending").update(next_attempt_at=None)
        enqueue_delivery(endpoint.pk)
    endpoint.refresh_from_db()
    return endpoint


def events_send_again(events) -> int:
    """Deliver these events again now (the admin's *send again*): each is
    pending again and due, with the same id; returns how many. An event
    being sent right now is left to its worker."""
    with transaction.atomic():
        chosen = Event.objects.filter(pk__in=[event.pk for event in events]).exclude(
            status="sending"
        )
        endpoint_ids = set(chosen.values_list("endpoint_id", flat=True))
        count = chosen.update(status="pending", attempts=0, next_attempt_at=None, delivered_at=None)
        for endpoint_id in sorted(endpoint_ids):
            enqueue_delivery(endpoint_id)
    return count


def enqueue_delivery(endpoint_id: int) -> None:
    """Queue the delivery of the endpoint's due events once the current
    transaction commits (at once outside one)."""
    transaction.on_commit(lambda: async_task(DELIVER_TASK, endpoint_id, group="webhooks"))


# --- the outbox -----------------------------------------------------------------------


def endpoints_wanting(event_type: str) -> list[Endpoint]:
    """The enabled endpoints that asked for ``event_type``: one small query,
    asked once per announcement (once per posting batch)."""
    return [
        endpoint
        for endpoint in Endpoint.objects.filter(disabled_at__isnull=True).only("id", "events")
        if event_type in endpoint.events
    ]


def new_event_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


def event_body(event_id: str, event_type: str, created, data: dict) -> str:
    return json.dumps(
        {"id": event_id, "type": event_type, "created": created.isoformat(), "data": data},
        cls=DjangoJSONEncoder,
        separators=(",", ":"),
        ensure_ascii=False,
    )


def events_write(event_type: str, endpoints, items) -> int:
    """Write one outbox row per (endpoint, item) and queue their delivery
    after the commit. ``items``: ``(subject, data)`` pairs, ``subject``
    naming what the event is about (``"document.posted:42"``); one event id
    per item, the same at every endpoint. A subject an endpoint already has
    is skipped (a change announced twice); returns how many rows were
    asked for.

    Call inside the transaction of the change (the receivers do): the rows
    commit or roll back with it."""
    if not endpoints:
        return 0
    created = timezone.now()
    rows = []
    for subject, data in items:
        event_id = new_event_id()
        body = event_body(event_id, event_type, created, data)
        rows.extend(
            Event(
                endpoint_id=endpoint.pk,
                event_id=event_id,
                event_type=event_type,
                subject=subject,
                created=created,
                body=body,
            )
            for endpoint in endpoints
        )
    Event.objects.bulk_create(rows, batch_size=WRITE_BATCH_SIZE, ignore_conflicts=True)
    for endpoint in endpoints:
        enqueue_delivery(endpoint.pk)
    return len(rows)
