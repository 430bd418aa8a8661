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
