"""Deployment checks of our own, run by ``manage.py check --deploy``."""

import ipaddress

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def secret_key_from_the_environment(app_configs, **kwargs):
    if settings.DEBUG or settings.SECRET_KEY_FROM_ENVIRONMENT:
        return []
    return [
        Warning(
            "SECRET_KEY is not set in the environment; the key generated in the "
            "installation's .secret_key file is used.",
            hint="Set SECRET_KEY to the same long random value on every web and worker host.",
            id="billing.W001",
        )
    ]


def address_hosts(hosts):
    """The entries of ALLOWED_HOSTS that let a client reach the site by a
    non-loopback address ("*" accepts any). Loopback is left out: it is what
    a proxy on the same host sends by default (nginx's Host: 127.0.0.1:8000)."""
    found = []
    for host in hosts:
        if host == "*":
            found.append(host)
            continue
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            continue
        if not address.is_loopback:
            found.append(host)
    return found


@register(Tags.security, deploy=True)
def forwarded_for_trusted_on_a_site_reached_by_address(app_configs, **kwargs):
    if not settings.TRUST_X_FORWARDED_FOR:
        return []
    hosts = address_hosts(settings.ALLOWED_HOSTS)
    if not hosts:
        return []
    return [
        Warning(
            "TRUST_X_FORWARDED_FOR is on and ALLOWED_HOSTS accepts "
            f"{', '.join(hosts)}: a client that reaches gunicorn directly, by its "
            "address, can send a different X-Forwarded-For with every sign-in "
            "attempt and never be throttled.",
            hint=(
                "Bind gunicorn to 127.0.0.1 or a private interface that only the proxy "
                "reaches, and list only the site's host names in ALLOWED_HOSTS; or turn "
                "TRUST_X_FORWARDED_FOR off if no proxy is in front."
            ),
            id="billing.W002",
        )
    ]


@register(Tags.security, deploy=True)
def documents_name_their_issuer_and_sender(app_configs, **kwargs):
    if settings.DEBUG:
        return []
    warnings = []
    if settings.BILLING_ISSUER == settings.DEMO_ISSUER:
        warnings.append(
            Warning(
                "BILLING_ISSUER is not set: every invoice and credit memo PDF, and "
                f"their emails' subjects, name the issuer as “{settings.DEMO_ISSUER}”.",
                hint="Set BILLING_ISSUER to your company's name and address (one line per \\n).",
                id="billing.W003",
            )
        )
    if settings.DEFAULT_FROM_EMAIL == settings.DEMO_FROM_EMAIL:
        warnings.append(
            Warning(
                "DEFAULT_FROM_EMAIL is not set and SITE_URL has no domain name: emails "
                f"are sent from the demo's “{settings.DEMO_FROM_EMAIL}”.",
                hint="Set DEFAULT_FROM_EMAIL, or SITE_URL to the site's https:// address.",
                id="billing.W004",
            )
        )
    return warnings
