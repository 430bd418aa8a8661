"""`manage.py billing_settings [--advanced-ar-settlement on|off]`."""

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from invoices.models import TenantSettings


def billing_settings(*argv):
    out = io.StringIO()
    call_command("billing_settings", *argv, stdout=out)
    return out.getvalue().strip()


@pytest.mark.django_db
def test_it_prints_the_settings_with_advanced_ar_settlement_off_by_default():
    assert billing_settings() == "advanced_ar_settlement: off"


@pytest.mark.django_db
def test_it_turns_advanced_ar_settlement_on_and_prints_the_new_value():
    # when
    shown = billing_settings("--advanced-ar-settlement", "on")

    # then
    assert shown == "advanced_ar_settlement: on"
    assert TenantSettings.load().advanced_ar_settlement is True
    assert billing_settings() == "advanced_ar_settlement: on"


@pytest.mark.django_db
def test_it_turns_advanced_ar_settlement_off_again():
    # given
    billing_settings("--advanced-ar-settlement", "on")

    # when
    shown = billing_settings("--advanced-ar-settlement", "off")

    # then
    assert shown == "advanced_ar_settlement: off"
    assert TenantSettings.load().advanced_ar_settlement is False


@pytest.mark.django_db
def test_setting_the_same_value_twice_keeps_one_settings_row():
    billing_settings("--advanced-ar-settlement", "on")
    billing_settings("--advanced-ar-settlement", "on")

    assert TenantSettings.objects.count() == 1


def test_a_bad_value_is_a_usage_error_with_exit_status_2():
    # when: argparse refuses it before the database is opened
    result = subprocess.run(
        [sys.executable, "manage.py", "billing_settings", "--advanced-ar-settlement", "maybe"],
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "billing_site.settings_test"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    # then
    assert result.returncode == 2
    assert "invalid choice: 'maybe'" in result.stderr
    assert "Traceback" not in result.stderr
