"""Production security settings: on by default, each configurable from the
environment, and `check --deploy` clean (tests/test_settings.py runs it)."""

import subprocess
import sys

import pytest

from tests.test_settings import PRODUCTION, PROJECT, environment, read_settings

SECURITY = [
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SECURE_PROXY_SSL_HEADER",
    "SECURE_SSL_REDIRECT",
    "TRUST_X_FORWARDED_FOR",
    "AXES_ENABLED",
    "AXES_FAILURE_LIMIT",
    "AXES_COOLOFF_TIME",
    "AXES_LOCKOUT_PARAMETERS",
    "AUTHENTICATION_BACKENDS",
    "MIDDLEWARE",
    "SILENCED_SYSTEM_CHECKS",
]


def test_production_is_secure_by_default():
    values = read_settings(SECURITY, **PRODUCTION)

    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_HSTS_SECONDS"] == 31536000
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["TRUST_X_FORWARDED_FOR"] is True
    assert values["AXES_ENABLED"] is True
    assert values["AXES_FAILURE_LIMIT"] == 5
    assert values["AXES_COOLOFF_TIME"] == "0:15:00"
    assert values["AXES_LOCKOUT_PARAMETERS"] == [["username", "ip_address"]]
    assert values["AUTHENTICATION_BACKENDS"][0] == "axes.backends.AxesStandaloneBackend"
    assert values["MIDDLEWARE"][-1] == "axes.middleware.AxesMiddleware"
    # only the two documented silences: the proxy redirects, preload is opt-in
    assert sorted(values["SILENCED_SYSTEM_CHECKS"]) == ["security.W008", "security.W021"]


def test_each_security_setting_can_be_changed_from_the_environment():
    values = read_settings(
        SECURITY,
        **PRODUCTION,
        SESSION_COOKIE_SECURE="0",
        CSRF_COOKIE_SECURE="0",
        SECURE_HSTS_SECONDS="600",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="0",
        SECURE_HSTS_PRELOAD="1",
        SECURE_PROXY_SSL_HEADER="0",
        SECURE_SSL_REDIRECT="1",
        AXES_FAILURE_LIMIT="10",
    )

    assert values["SESSION_COOKIE_SECURE"] is False
    assert values["CSRF_COOKIE_SECURE"] is False
    assert values["SECURE_HSTS_SECONDS"] == 600
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is False
    assert values["SECURE_HSTS_PRELOAD"] is True
    assert values["SECURE_PROXY_SSL_HEADER"] is None
    assert values["SECURE_SSL_REDIRECT"] is True
    # without the proxy, its X-Forwarded-For is not believed either
    assert values["TRUST_X_FORWARDED_FOR"] is False
    assert values["AXES_FAILURE_LIMIT"] == 10
    assert values["SILENCED_SYSTEM_CHECKS"] == []


def deploy_check(**variables):
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT,
        env=environment(**{**PRODUCTION, **variables}),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_deploy_check_is_clean_and_silent_with_production_values():
    result = deploy_check()

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert result.stderr == ""  # django-axes' start-up banner stays off


@pytest.mark.parametrize(
    ("variables", "warning"),
    [
        ({"SESSION_COOKIE_SECURE": "0"}, "security.W012"),
        ({"CSRF_COOKIE_SECURE": "0"}, "security.W016"),
        ({"SECURE_HSTS_SECONDS": "0"}, "security.W004"),
    ],
)
def test_the_deploy_check_catches_a_setting_turned_off(variables, warning):
    result = deploy_check(**variables)

    assert result.returncode != 0
    assert warning in result.stdout + result.stderr


@pytest.mark.parametrize("hosts", ["billing.example.com,203.0.113.7", "billing.example.com,*"])
def test_the_deploy_check_warns_when_forwarded_for_is_trusted_on_a_site_reached_by_address(hosts):
    # X-Forwarded-For is believed, and the site answers to an address: a client
    # that reaches gunicorn directly could rotate the header past the throttle
    result = deploy_check(ALLOWED_HOSTS=hosts)

    assert result.returncode != 0
    assert "billing.W002" in result.stderr
    assert "TRUST_X_FORWARDED_FOR is on" in result.stderr


@pytest.mark.parametrize(
    ("variables"),
    [
        # loopback is what a proxy on the same host sends as Host
        {"ALLOWED_HOSTS": "billing.example.com,127.0.0.1,[::1]"},
        {"ALLOWED_HOSTS": "billing.example.com,203.0.113.7", "TRUST_X_FORWARDED_FOR": "0"},
    ],
)
def test_the_deploy_check_is_quiet_about_addresses_it_need_not_warn_of(variables):
    result = deploy_check(**variables)

    assert "billing.W002" not in result.stdout + result.stderr


def test_the_deploy_check_warns_while_the_demo_issuer_and_sender_are_in_use():
    production = {name: value for name, value in PRODUCTION.items() if name != "BILLING_ISSUER"}
    production["SITE_URL"] = "http://10.0.0.5:8000"
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=PROJECT,
        env=environment(**production),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert "billing.W003" in result.stderr
    assert "BILLING_ISSUER is not set" in result.stderr
    assert "billing.W004" in result.stderr
    assert "DEFAULT_FROM_EMAIL is not set" in result.stderr
