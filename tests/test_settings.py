"""billing_site.settings read in a fresh interpreter with a chosen environment."""

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent

# The subprocesses start from an empty environment, so that nothing leaks in
# from the test runner's (CI's DATABASE_URL, a test's DJANGO_ALLOW_ASYNC_UNSAFE).
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")

PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "billing.example.com",
    "SITE_URL": "https://billing.example.com",
    "BILLING_ISSUER": "Example Billing Ltd\\n1 Main Street, Springfield",
}

READ_SETTINGS = """
import json
from billing_site import settings as s
print(json.dumps({name: getattr(s, name) for name in %r}, default=str))
"""


def environment(**variables):
    env = {name: os.environ[name] for name in INHERITED if name in os.environ}
    env.update(variables)
    return env


def run_python(code, **variables):
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT,
        env=environment(**variables),
        capture_output=True,
        text=True,
        timeout=60,
    )


def read_settings(names, **variables):
    result = run_python(READ_SETTINGS % (names,), **variables)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_postgres_url_selects_postgresql():
    url = "postgres://billing:secret@db.internal:5433/billing_prod"

    db = read_settings(["DATABASES"], DEBUG="1", DATABASE_URL=url)["DATABASES"]["default"]

    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert db["NAME"] == "billing_prod"
    assert db["HOST"] == "db.internal"
    assert db["PORT"] == 5433
    assert db["USER"] == "billing"
    assert db["CONN_HEALTH_CHECKS"] is True


def test_default_is_sqlite_in_wal_mode_with_immediate_transactions():
    db = read_settings(["DATABASES"], DEBUG="1")["DATABASES"]["default"]

    assert db["ENGINE"] == "django.db.backends.sqlite3"
    assert db["NAME"] == str(PROJECT / "db.sqlite3")
    assert db["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert db["OPTIONS"]["timeout"] >= 5
    assert "journal_mode=WAL" in db["OPTIONS"]["init_command"]


def test_task_queue_uses_the_database_without_redis():
    q_cluster = read_settings(["Q_CLUSTER"], DEBUG="1")["Q_CLUSTER"]

    assert q_cluster["orm"] == "default"
    assert "redis" not in q_cluster


def test_task_queue_uses_redis_when_redis_url_is_set():
    q_cluster = read_settings(
        ["Q_CLUSTER"], DEBUG="1", REDIS_URL="redis://127.0.0.1:6379/3", Q_WORKERS="8"
    )["Q_CLUSTER"]

    assert q_cluster["redis"] == "redis://127.0.0.1:6379/3"
    assert "orm" not in q_cluster
    assert q_cluster["workers"] == 8
    assert q_cluster["retry"] > q_cluster["timeout"]


def test_without_a_secret_key_debug_off_generates_one_for_the_installation(tmp_path):
    # given no SECRET_KEY in the environment, DEBUG off
    key_file = tmp_path / "secret_key"
    # when two processes start one after the other
    first = read_settings(["SECRET_KEY"], DEBUG="0", SECRET_KEY_FILE=str(key_file))
    second = read_settings(["SECRET_KEY"], DEBUG="0", SECRET_KEY_FILE=str(key_file))
    # then both sign with the same generated key, kept readable by its owner only
    assert first["SECRET_KEY"] == second["SECRET_KEY"]
    assert len(first["SECRET_KEY"]) >= 50
    assert key_file.read_text().strip() == first["SECRET_KEY"]
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_a_secret_key_that_cannot_be_generated_fails_clearly(tmp_path):
    result = run_python(
        "import billing_site.settings",
        DEBUG="0",
        SECRET_KEY_FILE=str(tmp_path / "missing-folder" / "secret_key"),
    )

    assert result.returncode != 0
    assert "SettingError: SECRET_KEY must be set" in result.stderr


def test_the_deploy_check_asks_for_a_secret_key_in_the_environment(tmp_path):
    production = {name: value for name, value in PRODUCTION.items() if name != "SECRET_KEY"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=PROJECT,
        env=environment(**production, SECRET_KEY_FILE=str(tmp_path / "secret_key")),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert "billing.W001" in result.stdout + result.stderr


def test_debug_on_and_off_share_the_installations_key(tmp_path):
    """`make run` (DEBUG on) and a command from a plain shell (DEBUG off) must
    sign the tasks they queue alike, or the worker refuses them."""
    key_file = str(tmp_path / "secret_key")
    on = read_settings(["SECRET_KEY"], DEBUG="1", SECRET_KEY_FILE=key_file)
    off = read_settings(["SECRET_KEY"], DEBUG="0", SECRET_KEY_FILE=key_file)
    assert on["SECRET_KEY"] == off["SECRET_KEY"]
    assert len(on["SECRET_KEY"]) >= 50


def test_default_from_email_is_support_at_the_site_host():
    values = read_settings(
        ["DEFAULT_FROM_EMAIL", "SERVER_EMAIL", "CSRF_TRUSTED_ORIGINS"], **PRODUCTION
    )

    assert values["DEFAULT_FROM_EMAIL"] == "support@billing.example.com"
    assert values["SERVER_EMAIL"] == "support@billing.example.com"
    assert values["CSRF_TRUSTED_ORIGINS"] == ["https://billing.example.com"]


def test_default_from_email_can_be_set():
    values = read_settings(
        ["DEFAULT_FROM_EMAIL"], DEBUG="1", DEFAULT_FROM_EMAIL="billing@acme.example"
    )

    assert values["DEFAULT_FROM_EMAIL"] == "billing@acme.example"


def test_production_defaults_are_secure():
    values = read_settings(
        [
            "DEBUG",
            "SESSION_COOKIE_SECURE",
            "CSRF_COOKIE_SECURE",
            "SECURE_HSTS_SECONDS",
            "SECURE_PROXY_SSL_HEADER",
            "EMAIL_BACKEND",
        ],
        **PRODUCTION,
    )

    assert values["DEBUG"] is False
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 31536000
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"


def test_deploy_check_passes_with_production_values():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT,
        env=environment(**PRODUCTION),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr


STATIC_PAGE = """
import re, django
django.setup()
from django.test import Client
client = Client(HTTP_HOST="billing.example.com", HTTP_X_FORWARDED_PROTO="https")
page = client.get("/accounts/login/")
css = re.search(r'href="(/static/[^"]+[.]css)"', page.content.decode()).group(1)
print(page.status_code, css, client.get(css).status_code)
"""


def test_pages_work_with_debug_off_before_and_after_collectstatic(tmp_path):
    # given production settings and an empty STATIC_ROOT, on a scratch database
    env = {
        **PRODUCTION,
        "STATIC_ROOT": str(tmp_path / "static"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "billing_site.settings",
    }
    # when nothing is collected, then the page and its stylesheet are served, unhashed
    before = run_python(STATIC_PAGE, **env)
    assert before.returncode == 0, before.stderr
    status, css, css_status = before.stdout.split()
    assert (status, css_status) == ("200", "200")
    assert not re.search(r"\.[0-9a-f]{12}\.css$", css), css
    # and after collectstatic, hashed names
    collected = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=PROJECT,
        env=environment(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert collected.returncode == 0, collected.stderr
    after = run_python(STATIC_PAGE, **env)
    assert after.returncode == 0, after.stderr
    status, css, css_status = after.stdout.split()
    assert (status, css_status) == ("200", "200")
    assert re.search(r"\.[0-9a-f]{12}\.css$", css), css


def test_the_issuer_defaults_to_a_demo_issuer_and_reads_escaped_new_lines():
    # the default names the product and the variable, never the site's host
    without = {name: value for name, value in PRODUCTION.items() if name != "BILLING_ISSUER"}
    assert read_settings(["BILLING_ISSUER"], **without)["BILLING_ISSUER"] == (
        "Billing (demo issuer: set BILLING_ISSUER)"
    )
    assert read_settings(["BILLING_ISSUER"], DEBUG="1", BILLING_ISSUER="  ")["BILLING_ISSUER"] == (
        "Billing (demo issuer: set BILLING_ISSUER)"
    )
    issuer = read_settings(["BILLING_ISSUER"], **without, BILLING_ISSUER="Acme Ltd\\n1 Main St")
    assert issuer["BILLING_ISSUER"] == "Acme Ltd\n1 Main St"


@pytest.mark.parametrize(
    "site_url", ["http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000"]
)
def test_a_site_without_a_domain_name_sends_from_the_demo_sender(site_url):
    # the demo used to send from support@127.0.0.1
    values = read_settings(["DEFAULT_FROM_EMAIL", "SERVER_EMAIL"], DEBUG="1", SITE_URL=site_url)

    assert values["DEFAULT_FROM_EMAIL"] == "Billing demo <billing-demo@example.com>"
    assert values["SERVER_EMAIL"] == values["DEFAULT_FROM_EMAIL"]


NUMERIC_SETTINGS = [
    "CONN_MAX_AGE",
    "AXES_FAILURE_LIMIT",
    "EMAIL_PORT",
    "EMAIL_TIMEOUT",
    "SECURE_HSTS_SECONDS",
    "EXPORT_MAX_ROWS",
    "IMPORT_MAX_BYTES",
    "Q_WORKERS",
    "Q_QUEUE_LIMIT",
    "BILLRUN_CHUNK_SIZE",
    "POST_BATCH_SIZE",
    "POST_WORKERS",
]
# CONN_MAX_AGE is read for PostgreSQL only (the URL is never connected to here).
POSTGRES = {"DATABASE_URL": "postgres://billing@db.internal:5432/billing"}


@pytest.mark.parametrize(
    ("name", "junk"),
    [(name, "abc") for name in NUMERIC_SETTINGS]
    + [("IMPORT_MAX_BYTES", junk) for junk in ["12.5", "1e3", "1_000", "٣", "0x10"]],
)
def test_a_numeric_setting_that_is_not_a_whole_number_is_refused_by_name(name, junk):
    result = run_python("import billing_site.settings", **PRODUCTION, **POSTGRES, **{name: junk})

    assert result.returncode != 0
    assert f"{name} must be a whole number (got {junk!r})." in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("EMAIL_PORT", "0", "EMAIL_PORT must be between 1 and 65535 (got 0)."),
        ("EMAIL_PORT", "65536", "EMAIL_PORT must be between 1 and 65535 (got 65536)."),
        ("Q_WORKERS", "0", "Q_WORKERS must be at least 1 (got 0)."),
        ("IMPORT_MAX_BYTES", "-1", "IMPORT_MAX_BYTES must be at least 1 (got -1)."),
        ("CONN_MAX_AGE", "-5", "CONN_MAX_AGE must be at least 0 (got -5)."),
    ],
)
def test_a_numeric_setting_out_of_its_range_is_refused_by_name(name, value, message):
    result = run_python("import billing_site.settings", **PRODUCTION, **POSTGRES, **{name: value})

    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "BILLRUN_LEASE_SECONDS",
            "abc",
            "BILLRUN_LEASE_SECONDS must be a number of seconds such as 30 or 0.5 (got 'abc').",
        ),
        (
            "BILLRUN_HEARTBEAT_SECONDS",
            "0",
            "BILLRUN_HEARTBEAT_SECONDS must be at least 0.1 seconds (got 0).",
        ),
        (
            "BILLRUN_SWEEP_SECONDS",
            "-1",
            "BILLRUN_SWEEP_SECONDS must be a number of seconds such as 30 or 0.5 (got '-1').",
        ),
        (
            "LOG_LEVEL",
            "loud",
            "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL (got 'loud').",
        ),
    ],
)
def test_a_duration_or_log_level_setting_that_is_junk_is_refused_by_name(name, value, message):
    result = run_python("import billing_site.settings", **PRODUCTION, **POSTGRES, **{name: value})

    assert result.returncode != 0
    assert message in result.stderr


def test_durations_and_log_levels_read_their_value():
    values = read_settings(
        ["BILLRUN_LEASE_SECONDS", "BILLRUN_HEARTBEAT_SECONDS", "LOGGING"],
        **PRODUCTION,
        BILLRUN_LEASE_SECONDS="45",
        BILLRUN_HEARTBEAT_SECONDS="0.5",
        LOG_LEVEL="warning",
    )

    assert values["BILLRUN_LEASE_SECONDS"] == 45.0
    assert values["BILLRUN_HEARTBEAT_SECONDS"] == 0.5
    assert values["LOGGING"]["root"]["level"] == "WARNING"


def test_numeric_settings_read_their_value_and_an_empty_one_means_the_default():
    values = read_settings(
        ["EMAIL_PORT", "IMPORT_MAX_BYTES", "EXPORT_MAX_ROWS", "DATABASES"],
        **PRODUCTION,
        **POSTGRES,
        EMAIL_PORT=" 587 ",
        IMPORT_MAX_BYTES="",
        EXPORT_MAX_ROWS="250",
        CONN_MAX_AGE="0",
    )

    assert values["EMAIL_PORT"] == 587
    assert values["IMPORT_MAX_BYTES"] == 200 * 1024 * 1024
    assert values["EXPORT_MAX_ROWS"] == 250
    assert values["DATABASES"]["default"]["CONN_MAX_AGE"] == 0


def test_manage_py_reports_a_junk_setting_in_one_line_without_a_traceback():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT,
        env=environment(DEBUG="0", IMPORT_MAX_BYTES="abc"),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1
    assert result.stderr == (
        "Configuration error: IMPORT_MAX_BYTES must be a whole number (got 'abc').\n"
    )
