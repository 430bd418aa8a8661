"""Test settings: tasks run inline, mail stays in memory, hashing is fast."""

import os

os.environ.setdefault("DEBUG", "1")

from billing_site.settings import *  # noqa: E402,F403
from billing_site.settings import Q_CLUSTER  # noqa: E402

Q_CLUSTER = {**Q_CLUSTER, "sync": True}
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
LOGGING = {"version": 1, "disable_existing_loggers": False}
# Static files come from the finders in tests; there is no collected folder.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
# Sign-in throttling would lock the tests' users out after a few deliberate
# failures; tests/test_security_signin.py turns it on where it is the subject.
AXES_ENABLED = False
