"""Request helpers for the site's security settings."""

from django.conf import settings


def client_ip_address(request):
    """The client's address, for django-axes' sign-in throttling.

    Behind our proxy every request comes from the proxy's address, so the
    address that counts is the last entry of X-Forwarded-For: the one the
    proxy itself appended. Entries before it are whatever the client sent and
    could be forged to dodge the throttle, so they are ignored. Without a
    trusted proxy (TRUST_X_FORWARDED_FOR off) the header is ignored entirely.
    """
    if settings.TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return request.META.get("REMOTE_ADDR")
