"""Deployment checks of our own, run by ``manage.py check --deploy``."""

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


@register(Tags.security, deploy=True)
def static_files_collected(app_configs, **kwargs):
    if settings.DEBUG or settings.STATIC_MANIFEST.exists():
        return []
    return [
        Warning(
            "The static files are not collected: the pages link them unhashed and "
            "uncompressed, without long-lived caching.",
            hint="Run `manage.py collectstatic --noinput` when deploying, then restart.",
            id="billing.W002",
        )
    ]

