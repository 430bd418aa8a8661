"""``Idempotency-Key`` on a POST: the same key (scoped to the API key that
sends it) with the same body within ``API_IDEMPOTENCY_TTL`` seconds answers
the first response again and does nothing; another body is 422.

The key's row is written in the transaction of the request's work, before
the work: a second request with the same key, at the same moment, waits on
the row's unique index until the first commits, then finds its answer and
replays it (or, if the first rolled back, does the work itself). Only
successful answers (2xx) are kept: a refusal changed nothing, so the same
request is judged again. The work runs in that one transaction, so its
tasks are queued when it commits (``transaction.on_commit``)."""

import datetime
import hashlib
import json

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.response import Response

from api.errors import IdempotencyMismatch, Invalid
from api.models import IdempotentRequest

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


def body_hash(request) -> str:
    """The SHA-256 of the request's path and parsed body, keys sorted: the
    same JSON with other spacing or key order is the same body."""
    canonical = json.dumps(
        [request.path, request.data], sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder
    )
    return hashlib.sha256(canonical.encode("utf-8", errors="surrogatepass")).hexdigest()


def _replay(row):
    response = Response(row.response, status=row.status_code)
    response["Idempotent-Replayed"] = "true"
    return response


def idempotent(request, work):
    """Call ``work()`` (which answers a Response) once per Idempotency-Key."""
    key = request.headers.get(HEADER)
    if key is None:
        return work()
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise Invalid(
            f"The {HEADER} header is 1 to {MAX_KEY_LENGTH} printable characters.",
            fields={HEADER: ["1 to 255 printable characters."]},
        )
    digest = body_hash(request)
    api_key = request.auth
    cutoff = timezone.now() - datetime.timedelta(seconds=settings.API_IDEMPOTENCY_TTL)
    with transaction.atomic():
        IdempotentRequest.objects.filter(api_key=api_key, key=key, created_at__lt=cutoff).delete()
        try:
            with transaction.atomic():
                row = IdempotentRequest.objects.create(
                    api_key=api_key,
                    key=key,
                    method=request.method,
                    path=request.path[:500],
                    body_hash=digest,
                )
        except IntegrityError:
            row = IdempotentRequest.objects.get(api_key=api_key, key=key)
            if row.body_hash != digest:
                raise IdempotencyMismatch(
                    f"The {HEADER} {key[:60]!r} was used with another request "
                    "in the last 24 hours; use a new key for a new request."
                ) from None
            return _replay(row)
        response = work()
        if not 200 <= response.status_code < 300:
            # A refusal keeps no row: the same request is judged again.
            transaction.set_rollback(True)
            return response
        row.status_code = response.status_code
        row.response = json.loads(json.dumps(response.data, cls=DjangoJSONEncoder))
        row.save(update_fields=["status_code", "response"])
    return response
