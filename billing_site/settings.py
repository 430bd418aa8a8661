"""Settings for the billing site, read from the environment.

Every setting a deployment changes is an environment variable; the README has
the table. The defaults give a working embedded setup: a SQLite file in the
project folder and the django-q2 ORM broker.
"""

import datetime
import ipaddress
import os
import secrets
from pathlib import Path
from urllib.parse import urlparse

import dj_database_url
from csp.constants import NONE, SELF

from billing_site.environment import (
    SettingError,
    env_bool,
    env_int,
    env_list,
    env_log_level,
    env_seconds,
)

BASE_DIR = Path(__file__).resolve().parent.parent


DEBUG = env_bool("DEBUG", False)


def local_secret_key(path):
    """The key of this installation, generated once into ``path``.

    Without SECRET_KEY in the environment (the embedded setup: ``make run``,
    and ``manage.py import_accounts``, ``billrun`` or a worker run from a
    shell, with DEBUG on or off), every process of the installation must
    still sign with the same key, or a worker could not read the tasks the
    commands queue. The file is
    created exclusively (two processes starting at once agree on one key) and
    readable by its owner only. ``check --deploy`` still asks for SECRET_KEY
    in the environment (billing_site.checks).
    """
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = Path(path).read_text().strip()
    except OSError as exc:
        raise SettingError(
            f"SECRET_KEY must be set: it is not in the environment and "
            f"{path} cannot be created ({exc.strerror})."
        ) from exc
    else:
        key = secrets.token_urlsafe(50)
        with os.fdopen(descriptor, "w") as file:
            file.write(key + "\n")
    if len(key) < 50:
        raise SettingError(f"SECRET_KEY must be set: {path} holds no usable key.")
    return key


SECRET_KEY = os.environ.get("SECRET_KEY", "")
SECRET_KEY_FROM_ENVIRONMENT = bool(SECRET_KEY)
if not SECRET_KEY:
    SECRET_KEY = local_secret_key(os.environ.get("SECRET_KEY_FILE", str(BASE_DIR / ".secret_key")))

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", SITE_URL)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_q",
    "django_tables2",
    "django_filters",
    "django_htmx",
    "axes",
    "csp",
    "core",
    "customers",
    "invoices",
    "billruns",
    "notifications",
    "webhooks",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "api",
    "billing_site.apps.BillingSiteConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "billing_site.middleware.PrivateCacheMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "billing_site.middleware.BoundedQueryMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a lockout into the lockout page.
    "axes.middleware.AxesMiddleware",
]

# "default" is Django's own default (per process). "pages" keeps rendered
# pages (core.pagecache): per process too, which is right for it, since its
# keys carry the database's change stamp and every process reads the same
# stamp; a shared cache would only add a round trip to every page.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "pages": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "pages",
        "TIMEOUT": 600,
        "OPTIONS": {"MAX_ENTRIES": 500},
    },
}

ROOT_URLCONF = "billing_site.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "invoices.context_processors.document_links",
                "billruns.context_processors.subscription_change_links",
                "notifications.context_processors.unread_notifications",
                "notifications.context_processors.run_page_panels",
            ],
        },
    },
]

WSGI_APPLICATION = "billing_site.wsgi.application"

# The embedded default is a SQLite file. The web server and the task workers
# write to it from separate processes: WAL lets readers proceed during a
# write, IMMEDIATE takes the write lock when a transaction starts (so two
# writers queue instead of failing on lock upgrade), and the timeout makes a
# waiting writer wait rather than raise "database is locked".
DATABASE_URL = os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("CONN_MAX_AGE", 60, minimum=0)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATIC_MANIFEST = STATIC_ROOT / "staticfiles.json"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "billing_site.storage.StaticFilesStorage"
        )
    },
}
# Until collectstatic has run, whitenoise serves the files where they are.
WHITENOISE_USE_FINDERS = DEBUG or not STATIC_MANIFEST.exists()

# Sign-in throttling (django-axes): after AXES_FAILURE_LIMIT failed sign-ins
# of one username from one address, that pair is refused for the cool-off,
# on the sign-in page and the admin's alike (both authenticate through the
# backends below, axes first). Keyed on the pair, not the address alone, so
# that colleagues behind one office NAT do not lock each other out, nor the
# username alone, so that a stranger cannot lock a clerk out from anywhere.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # ModelBackend, its permissions kept under the change stamp...
    "core.auth.StampedModelBackend",
    # ...and ModelBackend itself, for the sessions signed in before it (it
    # reads the permissions the first kept on the user: no query more).
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = env_bool("AXES_ENABLED", True)
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
# Fixed, because the lockout page (registration/lockout.html) states it.
AXES_COOLOFF_TIME = datetime.timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_TEMPLATE = "registration/lockout.html"
AXES_RESET_ON_SUCCESS = True
# Quiet: its start-up banner would land on every management command's stderr.
AXES_VERBOSE = False
AXES_CLIENT_IP_CALLABLE = "billing_site.security.client_ip_address"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# Email.
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(BASE_DIR / "sent-mail"))
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", os.environ.get("EMAIL_USER", ""))
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", os.environ.get("EMAIL_PASSWORD", ""))
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 20, minimum=1)
SITE_DOMAIN = urlparse(SITE_URL).hostname or "localhost"


def is_domain_name(host):
    """Whether ``host`` can end an email address: a dotted name, not an
    address (the demo's 127.0.0.1 made "support@127.0.0.1")."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return "." in host
    return False


# The sender: support@ the site's domain, or, where the site has no domain
# name (the demo, on 127.0.0.1), an address that says it is the demo's.
DEMO_FROM_EMAIL = "Billing demo <billing-demo@example.com>"
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "").strip() or (
    f"support@{SITE_DOMAIN}" if is_domain_name(SITE_DOMAIN) else DEMO_FROM_EMAIL
)
# Who sends the invoices: the top of every PDF (one line each; "\n" in the
# variable separates them) and, its first line, the documents' email subjects.
# The default says what to set; check --deploy warns while it is in use.
DEMO_ISSUER = "Billing (demo issuer: set BILLING_ISSUER)"
BILLING_ISSUER = os.environ.get("BILLING_ISSUER", "").replace("\\n", "\n").strip() or DEMO_ISSUER
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Security. Production sits behind a TLS-terminating proxy; these are on
# unless DEBUG is on, and each can be turned off explicitly.
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("SECURE_PROXY_SSL_HEADER", not DEBUG) else None
)
# Content-Security-Policy on every page (django-csp): only this site's own
# scripts, styles, images and forms, in no frame. No 'unsafe-inline' anywhere:
# the pages have no inline script, event handler or style attribute (their
# behaviour is static/js/app.js; htmx's injected indicator style is turned off
# in base.html and its rules are in app.css), and the admin has none either.
# data: for images only (an image cannot run script), so that a stylesheet's
# small icon can be inline.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
        "base-uri": [SELF],
        "object-src": [NONE],
    },
}
# The client's address for sign-in throttling: the last X-Forwarded-For entry
# (the one our proxy wrote) when behind the proxy, else the socket's address.
TRUST_X_FORWARDED_FOR = env_bool("TRUST_X_FORWARDED_FOR", SECURE_PROXY_SSL_HEADER is not None)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = env_list("SILENCED_SYSTEM_CHECKS", "")
if not SECURE_SSL_REDIRECT and not DEBUG and "security.W008" not in SILENCED_SYSTEM_CHECKS:
    # The proxy redirects to HTTPS; Django sees the forwarded scheme.
    SILENCED_SYSTEM_CHECKS.append("security.W008")
if not SECURE_HSTS_PRELOAD and not DEBUG and "security.W021" not in SILENCED_SYSTEM_CHECKS:
    # Joining the browsers' HSTS preload list binds the whole domain and its
    # subdomains to HTTPS for months; that is the domain owner's decision, so
    # it stays off unless SECURE_HSTS_PRELOAD=1 says otherwise.
    SILENCED_SYSTEM_CHECKS.append("security.W021")

# The HTTP API (docs/api.md): keys in the Authorization header only (no
# session: a browser's cookie never acts through the API), JSON only.
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 1024 * 1024, minimum=1024)
API_IDEMPOTENCY_TTL = env_int("API_IDEMPOTENCY_TTL", 24 * 3600, minimum=60)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.authentication.BearerKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["api.permissions.KeyPermissions"],
    "DEFAULT_PARSER_CLASSES": ["api.parsers.LimitedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_THROTTLE_CLASSES": [
        "api.throttles.KeyReadThrottle",
        "api.throttles.KeyWriteThrottle",
    ],
    # Per key; the counts live in the cache (CACHES: per process unless a
    # shared cache is configured).
    "DEFAULT_THROTTLE_RATES": {
        "api_read": os.environ.get("API_THROTTLE_READ", "1200/min"),
        "api_write": os.environ.get("API_THROTTLE_WRITE", "300/min"),
    },
    "EXCEPTION_HANDLER": "api.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Billing API",
    "DESCRIPTION": "Accounts, usage, bill runs, documents and webhooks (docs/api.md).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The browsable docs' scripts and styles are served from this site's
    # static files (the sidecar), never a CDN: the pages' CSP allows only 'self'.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SECURITY": [{"bearerAuth": []}],
    "APPEND_COMPONENTS": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
}

# The largest import file accepted, in bytes (refused before it is read).
# Rows in one CSV or XLSX export of a table (core.exports): it is built
# in the web request, at 0.15 to 0.3 ms a row (CSV, XLSX).
EXPORT_MAX_ROWS = env_int("EXPORT_MAX_ROWS", 100000, minimum=1)
# The Review tab flags an account whose total changed by more than this many
# percent of last time's (docs/billing-rules.md, Reviewing a run).
REVIEW_THRESHOLD_PERCENT = env_int("REVIEW_THRESHOLD_PERCENT", 25, minimum=1, maximum=1000)
IMPORT_MAX_BYTES = env_int("IMPORT_MAX_BYTES", 200 * 1024 * 1024, minimum=1)

# Task queue. retry must exceed timeout, or a long task is handed to a second
# worker while the first still runs it. Every task is idempotent anyway.
REDIS_URL = os.environ.get("REDIS_URL", "")
Q_CLUSTER = {
    # The queue's name (its key in Redis): sites, or test processes, that
    # share one Redis each use their own.
    "name": os.environ.get("Q_CLUSTER_NAME", "billing"),
    "workers": env_int("Q_WORKERS", 2, minimum=1),
    "timeout": 600,
    "retry": 720,
    "max_attempts": 3,
    "catch_up": False,
    "save_limit": 1000,
    "ack_failures": True,
    "label": "Task queue",
    # Tasks a cluster takes from the broker ahead of its workers: few, so
    # that the chunks of one run spread over every host.
    "queue_limit": env_int("Q_QUEUE_LIMIT", 4, minimum=1),
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    # How long an idle cluster waits before it asks the database for tasks
    # again: what a queued run waits before it starts (django-q2's default).
    Q_CLUSTER["poll"] = 0.2

# Bill runs: accounts per chunk task (many chunks let many workers share a
# run), and the name this host records on the chunks it processes.
BILLRUN_CHUNK_SIZE = env_int("BILLRUN_CHUNK_SIZE", 2000, minimum=1)
BILLING_NODE = os.environ.get("BILLING_NODE", "")
# Documents posted per UPDATE when a run is posted (each batch commits on its own).
POST_BATCH_SIZE = env_int("POST_BATCH_SIZE", 5000, minimum=1)
# Connections that post a run's batches side by side (PostgreSQL only).
POST_WORKERS = env_int("POST_WORKERS", 2, minimum=1)
# Leases on a run's chunks, postings and cancels (billruns.leases): the
# worker renews its lease every BILLRUN_HEARTBEAT_SECONDS while it works;
# a lease not renewed for BILLRUN_LEASE_SECONDS is handed to another worker
# by the sweeper that runs every BILLRUN_SWEEP_SECONDS in each worker. A dead
# worker's chunk is queued again within lease + sweep (40 s by default).
BILLRUN_HEARTBEAT_SECONDS = env_seconds("BILLRUN_HEARTBEAT_SECONDS", 5.0)
BILLRUN_LEASE_SECONDS = env_seconds("BILLRUN_LEASE_SECONDS", 30.0)
BILLRUN_SWEEP_SECONDS = env_seconds("BILLRUN_SWEEP_SECONDS", 10.0, minimum=0)
# The task that emails a Posted run's documents to its customers, run or
# queued by billruns.services.bill_run_email: billruns sits below the app
# that sends customer emails and names it only here.
BILLRUN_EMAIL_DOCUMENTS_TASK = "notifications.tasks.email_run_documents"
# Webhooks (docs/webhooks.md): with DEBUG off, an endpoint whose host
# resolves to a loopback, private or link-local address is refused, at
# creation and at each delivery, unless this is on (a receiver on the
# company's own network). Each delivery waits at most WEBHOOK_TIMEOUT seconds.
WEBHOOK_ALLOW_PRIVATE = env_bool("WEBHOOK_ALLOW_PRIVATE", False)
WEBHOOK_TIMEOUT = env_seconds("WEBHOOK_TIMEOUT", 10.0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_log_level("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Library chatter: a line or more per PDF and per task otherwise.
        "weasyprint": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
        "django-q": {"level": env_log_level("Q_LOG_LEVEL", "WARNING")},
    },
}
