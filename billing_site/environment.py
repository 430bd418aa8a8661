"""Reading settings from environment variables, for billing_site.settings.

A value that cannot be used stops the start-up with a message that names the
variable (a SettingError); manage.py prints that message as one line, without
a traceback, since the traceback would only point at the settings module.
"""

import os
import re

from django.core.exceptions import ImproperlyConfigured

WHOLE_NUMBER = re.compile(r"-?[0-9]+")
SECONDS = re.compile(r"[0-9]+(\.[0-9]+)?")


class SettingError(ImproperlyConfigured):
    """An environment variable holds a value the settings cannot use."""


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name, default=""):
    return [part.strip() for part in os.environ.get(name, default).split(",") if part.strip()]


def env_int(name, default, *, minimum=None, maximum=None):
    """The whole number in the variable ``name``, or ``default`` when it is
    unset or empty; anything else, or a number outside the bounds, is a
    SettingError naming the variable."""
    raw = os.environ.get(name, "")
    text = raw.strip()
    if not text:
        return default
    # Digits only: int() would also take "1_000" and other scripts' digits.
    if not WHOLE_NUMBER.fullmatch(text):
        raise SettingError(f"{name} must be a whole number (got {raw!r}).")
    value = int(text)
    if minimum is not None and maximum is not None and not minimum <= value <= maximum:
        raise SettingError(f"{name} must be between {minimum} and {maximum} (got {value}).")
    if minimum is not None and value < minimum:
        raise SettingError(f"{name} must be at least {minimum} (got {value}).")
    if maximum is not None and value > maximum:
        raise SettingError(f"{name} must be at most {maximum} (got {value}).")
    return value


def env_seconds(name, default, *, minimum=0.1):
    """A duration in seconds (``30``, ``0.5``) in the variable ``name``, or
    ``default`` when it is unset or empty; anything else is a SettingError
    naming the variable."""
    raw = os.environ.get(name, "")
    text = raw.strip()
    if not text:
        return default
    if not SECONDS.fullmatch(text):
        raise SettingError(f"{name} must be a number of seconds such as 30 or 0.5 (got {raw!r}).")
    value = float(text)
    if value < minimum:
        raise SettingError(f"{name} must be at least {minimum} seconds (got {text}).")
    return value


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def env_log_level(name, default):
    """A logging level name in the variable ``name`` (any case), or ``default``."""
    raw = os.environ.get(name, "")
    text = raw.strip().upper()
    if not text:
        return default
    if text not in LOG_LEVELS:
        raise SettingError(f"{name} must be one of {', '.join(LOG_LEVELS)} (got {raw!r}).")
    return text
