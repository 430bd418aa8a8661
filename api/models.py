"""API keys and the responses kept for ``Idempotency-Key`` (docs/api.md)."""

from django.conf import settings
from django.db import models


class Role(models.TextChoices):
    CLERK = "clerk", "Billing clerk"
    VIEWER = "viewer", "Billing viewer"


# The group each role's user belongs to (billruns/migrations/0002_roles.py):
# a key acts with its role's permissions, as a person of that role would.
ROLE_GROUPS = {Role.CLERK: "Billing clerk", Role.VIEWER: "Billing viewer"}


class ApiKey(models.Model):
    """A key for ``Authorization: Bearer KEY``. Only the SHA-256 of the key is
    stored (the key is 256 random bits: no slow hash is needed to resist a
    guess); ``prefix`` is its first characters, shown to tell keys apart.

    What a key does is done by ``user`` (``key:NAME``, made with the key, in
    the role's group, with no usable password): every record that names who
    acted names it, with no change to those records."""

    name = models.CharField(max_length=100, unique=True)
    role = models.CharField(max_length=16, choices=Role.choices)
    prefix = models.CharField(max_length=16, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="api_key", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Written at most once a minute per key (api.authentication).
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = "API key"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(role__in=Role.values), name="apikey_role_valid"
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def is_revoked(self):
        return self.revoked_at is not None


class IdempotentRequest(models.Model):
    """A POST sent with ``Idempotency-Key``: the key, scoped to the API key
    that sent it, the SHA-256 of its body and, once it has one, its answer.
    The unique constraint makes two concurrent requests with one key one
    request: the second waits for the first's row and replays its answer.
    Kept 24 hours (``IDEMPOTENCY_TTL``); older rows are ignored and replaced."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    body_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["api_key", "key"], name="idempotency_key_once_per_key"),
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created")]

    def __str__(self):
        return f"{self.api_key_id}:{self.key}"
