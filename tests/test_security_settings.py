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
