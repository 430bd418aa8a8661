"""Changes and a bill run reaching one account at once, on PostgreSQL with a
real ``amend`` process (BILLING_RULES.md, Subscription changes): the changes
lock the account as a run's chunk does, so the run bills everything before
the changes or everything after them.

The run's side is played by the test itself, doing what a chunk does: lock
the account, then bill (set a charge's charged-through date)."""

import datetime
import json
import subprocess
import sys

import pytest
from django.db import transaction

from customers.models import Account, Charge, SubscriptionChange
from tests.factories import OneTimeChargeFactory
from tests.processes import ROOT, process_env, wait_for
from tests.test_import_usage_concurrency import waiting_backends

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

JAN = datetime.date(2026, 1, 1)


def start_amend(path):
    return subprocess.Popen(
        [sys.executable, "manage.py", "amend", str(path)],
        cwd=ROOT,
        env=process_env("amend"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_removal_waiting_for_a_run_sees_what_the_run_billed(tmp_path):
    # given a file removing a one-time charge, and a run's chunk holding its account
    charge = OneTimeChargeFactory(number="C-RACE", start_date=JAN)
    path = tmp_path / "changes.json"
    path.write_text(
        json.dumps(
            {
                "changes": [
                    {"type": "remove_charge", "charge": "C-RACE", "effective_date": "2026-01-01"}
                ]
            }
        )
    )
    with transaction.atomic():
        Account.objects.select_for_update().get(pk=charge.subscription.account_id)
        amend = start_amend(path)
        # when the changes reach the account's lock while the run bills the charge
        wait_for(
            lambda: (
                amend.poll() is not None
                or waiting_backends('SELECT "customers_account"."id" AS "pk" FROM') == 1
            ),
            timeout=60,
            what="amend to wait for the account's lock",
        )
        assert amend.poll() is None, amend.communicate()
        Charge.objects.filter(pk=charge.pk).update(charged_through_date=JAN)
    out, err = amend.communicate(timeout=60)

    # then the removal, let in after the run's commit, saw it billed
    assert amend.returncode == 1, (out, err)
    assert err.strip() == (
        "changes[0].charge: C-RACE: a one-time charge can be removed only while unbilled"
    )
    assert not SubscriptionChange.objects.exists()
    charge.refresh_from_db()
    assert charge.end_date is None
