"""``Authorization: Bearer KEY``: the key's user acts (``key:NAME``)."""

import datetime

from django.utils import timezone
from rest_framework import authentication, exceptions

from api.keys import api_key_for
from api.models import ApiKey

# last_used_at is written when it is older than this: a key used all day
# costs one small UPDATE a minute, not one per request.
LAST_USED_RESOLUTION = datetime.timedelta(minutes=1)


class BearerKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request)
        if not header:
            return None
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() != b"bearer":
            raise exceptions.AuthenticationFailed(
                "Send the key as 'Authorization: Bearer KEY'.", code="unauthenticated"
            )
        try:
            raw = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raw = ""
        # The permission the view needs for this request, read with the key
        # (one query: api.permissions.with_permission).
        view = (getattr(request, "parser_context", None) or {}).get("view")
        needed = getattr(view, "required_permission", None)
        key = api_key_for(raw, permission=needed(request) if needed else None)
        if key is None:
            raise exceptions.AuthenticationFailed(
                "The API key is unknown or revoked.", code="unauthenticated"
            )
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now
        return key.user, key

    def authenticate_header(self, request):
        return self.keyword
