"""Making and revoking API keys, and finding the key a request brings."""

import hashlib
import re
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.utils import timezone

from api.models import ROLE_GROUPS, ApiKey, Role
from api.permissions import with_permission

KEY_PREFIX = "bk_"
# Shown in the admin and by the command to tell keys apart: "bk_" and 8 more.
PREFIX_LENGTH = len(KEY_PREFIX) + 8
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# What a key's user is named: records name it as who acted.
USERNAME_FORMAT = "key:{name}"


class ApiKeyRefused(Exception):
    """The key cannot be made or revoked; the message says why. Nothing changed."""


def key_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", errors="surrogatepass")).hexdigest()


def api_key_create(*, name: str, role: str) -> tuple[ApiKey, str]:
    """Make the key ``name`` of ``role`` with its user ``key:NAME``; returns
    the key's row and the key itself, which is stored nowhere (only its
    hash). One transaction; a name in use (by a key, revoked or not, or by a
    user) is refused."""
    name = (name or "").strip()
    if not NAME_PATTERN.fullmatch(name):
        raise ApiKeyRefused(
            f"A key's name is 1 to 100 letters, digits, '_', '.' or '-', "
            f"starting with a letter or digit, not {name!r}."
        )
    if role not in Role.values:
        raise ApiKeyRefused(f"A key's role is one of {', '.join(Role.values)}, not {role!r}.")
    username = USERNAME_FORMAT.format(name=name)
    users = get_user_model().objects
    if ApiKey.objects.filter(name=name).exists() or users.filter(username=username).exists():
        raise ApiKeyRefused(f"The name {name!r} is taken: a key's name is never reused.")
    raw = KEY_PREFIX + secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            user = users.create_user(username=username)  # no usable password: no sign-in
            user.groups.add(Group.objects.get(name=ROLE_GROUPS[Role(role)]))
            key = ApiKey.objects.create(
                name=name, role=role, prefix=raw[:PREFIX_LENGTH], key_hash=key_hash(raw), user=user
            )
    except IntegrityError as exc:
        raise ApiKeyRefused(f"The name {name!r} is taken: a key's name is never reused.") from exc
    return key, raw


def api_key_revoke(*, name: str) -> ApiKey:
    """Revoke the key ``name`` (its user is made inactive too). Revoking a
    revoked key changes nothing. Refused for an unknown name."""
    with transaction.atomic():
        key = ApiKey.objects.select_for_update().filter(name=name).first()
        if key is None:
            raise ApiKeyRefused(f"No API key is named {name!r}.")
        if key.revoked_at is None:
            key.revoked_at = timezone.now()
            key.save(update_fields=["revoked_at"])
            get_user_model().objects.filter(pk=key.user_id).update(is_active=False)
    return key


def api_key_for(raw: str, *, permission: str | None = None) -> ApiKey | None:
    """The live key ``raw`` is, with its user, or None (unknown or revoked).
    With ``permission``, the same query reads whether the key's user holds
    it (api.permissions.with_permission; ``key.granted_permission`` names
    it): the request's permission check then asks nothing more."""
    if not raw.startswith(KEY_PREFIX) or len(raw) > 200:
        return None
    keys = with_permission(ApiKey.objects.select_related("user"), permission)
    key = keys.filter(key_hash=key_hash(raw)).first()
    if key is None or key.revoked_at is not None or not key.user.is_active:
        return None
    if hasattr(key, "granted"):
        key.granted_permission = permission
    return key
