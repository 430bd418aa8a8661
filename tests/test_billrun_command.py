"""``manage.py billrun`` as INTERFACES.md specifies it ("Operating bill runs").

A refused action raises CommandError from call_command (Django prints it on
stderr and exits 1); a malformed command line raises CommandError too when
called from code and exits 2 from a shell. The tests' database lives in
memory, so exit codes of actions that need it are checked through CommandError.
"""

import datetime
import io
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from billruns import generation, services
from billruns.models import BillRun, BillRunChunk, BillRunEvent, RunStatus
from billruns.services import posting
from customers.models import Charge
from invoices.models import Document, DocumentStatus, TenantSettings
from tests.factories import (
    AccountFactory,
    ChargeFactory,
    OneTimeChargeFactory,
    SubscriptionFactory,
    UsageChargeFactory,
    UsageRecordFactory,
    per_unit_pricing,
)

BASE_DIR = Path(__file__).resolve().parent.parent
JAN = datetime.date(2026, 1, 1)

SUMMARY_TYPES = {
    "number": str,
    "status": str,
    "has_errors": bool,
    "target_date": str,
    "invoice_date": str,
    "created_by": (str, type(None)),
    "schedule": (str, type(None)),
    "retry_of": (str, type(None)),
    "auto_post": bool,
    "exclude_charge_types": list,
    "preview": bool,
    "accounts_processed": int,
    "accounts_failed": int,
    "invoices": int,
    "credit_memos": int,
    "totals": dict,
    "failures": list,
}
# Keys the engine adds to the documented ones (INTERFACES.md: "add to them freely").
ADDED_KEYS = {"accounts_selected", "error", "last_post_error"}
DOCUMENT_KEYS = {
    "type",
    "number",
    "account",
    "status",
    "currency",
    "amount",
    "balance",
    "invoice_date",
    "due_date",
    "subtotal",
    "taxes",
    "items",
}
ITEM_KEYS = {
    "subscription",
    "charge",
    "service_start",
    "service_end",
    "amount",
    "kind",
    "charge_number",
    "quantity",
}


def billrun(*argv):
    """Run ``billrun`` and return its standard output."""
    out, err = io.StringIO(), io.StringIO()
    call_command("billrun", *argv, stdout=out, stderr=err)
    return out.getvalue()


def refused(*argv):
    """Run ``billrun`` expecting a refusal; return its one-line message."""
    with pytest.raises(CommandError) as error:
        billrun(*argv)
    message = str(error.value)
    assert "\n" not in message
    return message


def shown(number, *flags):
    return json.loads(billrun("show", number, "--json", *flags))


def state():
    return {
        "runs": list(BillRun.objects.order_by("id").values_list("number", "status")),
        "events": BillRunEvent.objects.count(),
        "documents": list(Document.objects.order_by("id").values_list("number", "status")),
        "charges": list(Charge.objects.order_by("id").values_list("id", "charged_through_date")),
    }


def completed_run(*extra):
    return billrun("create", "--target-date", "2026-01-01", "--wait", *extra).splitlines()[0]


# --- create ------------------------------------------------------------------


@pytest.mark.django_db
def test_create_wait_prints_the_number_first_then_the_outcome(superuser):
    # given
    ChargeFactory()
    # when
    lines = billrun("create", "--target-date", "2026-01-01", "--wait").splitlines()
    # then
    run = BillRun.objects.get()
    assert lines == [run.number, f"{run.number} Completed"]
    assert run.status == RunStatus.COMPLETED
    assert run.invoices_count == 1


@pytest.mark.django_db
def test_create_wait_says_when_the_run_completed_with_errors(superuser):
    # given
    AccountFactory(bill_to_email="")
    # when
    lines = billrun("create", "--target-date", "2026-01-01", "--wait").splitlines()
    # then
    assert lines[1] == f"{lines[0]} Completed with errors"


@pytest.mark.django_db
def test_create_wait_exits_1_when_the_run_ends_in_error(superuser, monkeypatch):
    # given
    ChargeFactory()

    def fails(chunk_id, *, cluster=""):
        raise RuntimeError("disk full")

    monkeypatch.setattr(generation, "process_chunk", fails)
    # when
    message = refused("create", "--target-date", "2026-01-01", "--wait")
    # then
    run = BillRun.objects.get()
    assert run.status == RunStatus.ERROR
    assert message.startswith(f"{run.number} ended in Error: Chunk 1 failed")


@pytest.mark.django_db
def test_create_without_wait_queues_the_run_and_prints_its_number(superuser):
    # given / when
    output = billrun("create", "--target-date", "2026-01-01")
    # then
    run = BillRun.objects.get()
    assert output.splitlines() == [run.number]
    assert run.status == RunStatus.PENDING


@pytest.mark.django_db
def test_create_takes_every_option(superuser):
    # given / when
    number = billrun(
        "create",
        "--target-date",
        "2026-02-01",
        "--invoice-date",
        "2026-02-03",
        "--batch",
        "2",
        "--batch",
        "7",
        "--bill-cycle-day",
        "15",
        "--auto-post",
        "--auto-email",
        "--no-email-for-zero-amount",
    ).strip()
    # then
    run = BillRun.objects.get(number=number)
    assert (run.target_date, run.invoice_date) == (
        datetime.date(2026, 2, 1),
        datetime.date(2026, 2, 3),
    )
    assert (run.batches, run.bill_cycle_days) == ([2, 7], [15])
    assert (run.auto_post, run.auto_email, run.no_email_for_zero_amount) == (True, True, True)


@pytest.mark.django_db
def test_create_defaults_to_today_all_batches_and_all_days(superuser):
    # given / when
    number = billrun("create").strip()
    # then
    run = BillRun.objects.get(number=number)
    assert run.target_date == run.invoice_date == timezone.localdate()
    assert (run.batches, run.bill_cycle_days, run.account_id) == ([], [], None)


@pytest.mark.django_db
def test_create_for_an_account_and_some_subscriptions_bills_only_those(superuser):
    # given
    account = AccountFactory(number="A00000001")
    ChargeFactory(subscription=SubscriptionFactory(number="S00000001", account=account))
    ChargeFactory(subscription=SubscriptionFactory(number="S00000002", account=account))
    ChargeFactory(subscription=SubscriptionFactory(number="S00000003", account=account))
    # when
    number = completed_run("--account", "A00000001", "--subscription", "S00000001")
    # then
    [document] = shown(number, "--documents")["documents"]
    assert [item["subscription"] for item in document["items"]] == ["S00000001"]


@pytest.mark.django_db
def test_create_excludes_the_charge_types_given_sorted_and_once(superuser):
    # given / when
    number = billrun(
        "create",
        "--exclude-charge-type",
        "usage",
        "--exclude-charge-type",
        "one_time",
        "--exclude-charge-type",
        "usage",
    ).strip()
    # then
    run = BillRun.objects.get(number=number)
    assert run.exclude_charge_types == ["one_time", "usage"]
    assert shown(number)["exclude_charge_types"] == ["one_time", "usage"]


@pytest.mark.django_db
def test_create_without_exclude_charge_type_bills_every_type(superuser):
    # given / when
    number = billrun("create").strip()
    # then
    assert BillRun.objects.get(number=number).exclude_charge_types == []


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["tax", "Usage", "one-time", ""])
def test_an_unknown_charge_type_is_refused_and_creates_nothing(value, superuser):
    # given accounts that a run would bill
    ChargeFactory()
    # when
    got = refused("create", "--exclude-charge-type", value)
    # then
    assert got == (
        "Error: argument --exclude-charge-type: must be one of one_time, recurring, usage, "
        f"not {value!r}"
    )
    assert not BillRun.objects.exists()


def test_an_unknown_charge_type_exits_2_from_a_shell():
    # given: parsing fails before the command touches a database
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "billing_site.settings_test"}
    # when
    result = subprocess.run(
        [sys.executable, "manage.py", "billrun", "create", "--exclude-charge-type", "tax"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # then
    assert result.returncode == 2
    assert (
        "argument --exclude-charge-type: must be one of one_time, recurring, usage, not 'tax'"
        in result.stderr
    )
    assert result.stdout == ""


@pytest.mark.django_db
def test_an_excluded_type_stays_due_and_bills_in_the_next_run(superuser):
    # given an account with a monthly plan and usage in January
    subscription = SubscriptionFactory(
        account__number="A00000001", start_date=datetime.date(2026, 1, 1)
    )
    plan = ChargeFactory(subscription=subscription, name="Pro plan")
    calls = UsageChargeFactory(
        subscription=subscription,
        name="API calls",
        unit="calls",
        pricing=per_unit_pricing("0.01"),
        start_date=datetime.date(2026, 1, 1),
    )
    UsageRecordFactory(charge=calls, date=datetime.date(2026, 1, 10), quantity=Decimal("150.5"))
    # when the first run excludes usage
    first = completed_run("--target-date", "2026-02-01", "--exclude-charge-type", "usage")
    # then it bills the plan only, and the usage stays due
    [document] = shown(first, "--documents")["documents"]
    assert [item["charge_number"] for item in document["items"]] == [plan.number, plan.number]
    calls.refresh_from_db()
    assert calls.charged_through_date is None
    # when the next run excludes nothing
    second = completed_run("--target-date", "2026-02-01")
    # then it bills January's usage, and the plan no second time
    [document] = shown(second, "--documents")["documents"]
    assert [
        (item["charge_number"], item["service_start"], item["quantity"], item["amount"])
        for item in document["items"]
    ] == [(calls.number, "2026-01-01", "150.5", "1.51")]
    calls.refresh_from_db()
    assert calls.charged_through_date == datetime.date(2026, 2, 1)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--account", "A00000001", "--batch", "1"],
            "--account cannot be combined with --batch or --bill-cycle-day.",
        ),
        (
            ["--account", "A00000001", "--bill-cycle-day", "1"],
            "--account cannot be combined with --batch or --bill-cycle-day.",
        ),
        (["--subscription", "S00000001"], "--subscription needs --account."),
        (["--account", "A99999999"], "account: No account has the number 'A99999999'."),
        (
            ["--bill-cycle-day", "32"],
            "argument --bill-cycle-day: must be a day from 1 to 31 or all, not '32'",
        ),
        (["--batch", "51"], "argument --batch: must be a batch from 1 to 50, not '51'"),
        (
            ["--target-date", "2026-02-30"],
            "argument --target-date: '2026-02-30' is not a date (expected YYYY-MM-DD)",
        ),
    ],
    ids=[
        "account-batch",
        "account-bcd",
        "subscription-alone",
        "unknown-account",
        "bcd",
        "batch",
        "date",
    ],
)
def test_create_with_bad_parameters_is_refused_and_creates_nothing(argv, message, superuser):
    # given
    AccountFactory(number="A00000001")
    # when
    got = refused("create", *argv)
    # then
    assert message in got
    assert not BillRun.objects.exists()


# --- users and permissions ---------------------------------------------------


@pytest.mark.django_db
def test_the_default_user_is_the_first_superuser(django_user_model):
    # given
    first = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    django_user_model.objects.create_superuser("second", "second@example.com", "pw")
    # when
    number = billrun("create", "--target-date", "2026-01-01").strip()
    # then
    assert BillRun.objects.get(number=number).created_by == first
    assert shown(number)["created_by"] == "root"


@pytest.mark.django_db
def test_without_a_superuser_the_run_has_no_creator(clerk):
    # given / when
    number = completed_run()
    # then
    assert BillRun.objects.get(number=number).created_by is None
    assert shown(number)["created_by"] is None


@pytest.mark.django_db
def test_a_named_user_is_recorded(superuser, clerk):
    # given / when
    number = completed_run("--user", "clerk")
    # then
    assert shown(number)["created_by"] == "clerk"


@pytest.mark.django_db
def test_an_unknown_user_is_refused(superuser):
    # given / when / then
    assert refused("create", "--user", "nobody") == "No user is named 'nobody'."
    assert not BillRun.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["post", "cancel", "retry", "delete"])
def test_an_unknown_user_is_refused_for_every_action(action, superuser):
    # given
    AccountFactory(bill_to_email="")
    number = completed_run()
    before = state()
    # when / then
    assert refused(action, number, "--user", "nobody") == "No user is named 'nobody'."
    assert state() == before


@pytest.mark.django_db
def test_a_user_without_the_permission_may_not_create(viewer):
    # given / when / then
    assert refused("create", "--user", "viewer") == "User viewer may not create bill runs."
    assert not BillRun.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["post", "cancel", "retry", "delete"])
def test_a_user_without_the_permission_is_refused_every_action(action, superuser, viewer):
    # given
    AccountFactory(bill_to_email="")
    ChargeFactory()
    number = completed_run()
    before = state()
    # when / then
    assert refused(action, number, "--user", "viewer") == f"User viewer may not {action} bill runs."
    assert state() == before


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["post", "cancel", "retry", "delete", "show"])
def test_an_unknown_run_number_is_refused(action, superuser):
    # given / when / then
    assert refused(action, "BR-99999999") == "No bill run has the number 'BR-99999999'."


# --- post, cancel, delete, retry ---------------------------------------------


@pytest.mark.django_db
def test_post_posts_a_completed_run_and_prints_the_outcome(superuser):
    # given
    ChargeFactory()
    number = completed_run()
    # when
    output = billrun("post", number)
    # then
    assert output.strip() == f"{number} Posted"
    assert shown(number, "--documents")["documents"][0]["status"] == "Posted"
    assert BillRun.objects.get(number=number).posted_by == superuser


@pytest.mark.django_db
def test_post_of_a_run_in_the_wrong_status_is_refused_and_changes_nothing(superuser):
    # given
    number = billrun("create", "--target-date", "2026-01-01").strip()
    before = state()
    # when
    message = refused("post", number)
    # then
    assert message == f"{number} is Pending: it can be posted only when it is Completed."
    assert state() == before


@pytest.mark.django_db
def test_post_that_fails_is_refused_and_the_run_stays_completed(superuser, monkeypatch):
    # given
    ChargeFactory()
    number = completed_run()

    def posting_fails(**kwargs):
        raise RuntimeError("ledger is read-only")

    monkeypatch.setattr(posting, "documents_post_for_run", posting_fails)
    # when
    message = refused("post", number)
    # then
    assert message.startswith(f"Posting {number} failed: ledger is read-only.")
    summary = shown(number)
    assert summary["status"] == "Completed"
    assert summary["last_post_error"] == "ledger is read-only"


@pytest.mark.django_db
def test_cancel_cancels_a_completed_run_and_prints_the_outcome(superuser):
    # given
    charge = ChargeFactory()
    number = completed_run()
    # when
    output = billrun("cancel", number)
    # then
    assert output.strip() == f"{number} Canceled"
    assert shown(number, "--documents")["documents"][0]["status"] == "Canceled"
    charge.refresh_from_db()
    assert charge.charged_through_date is None


@pytest.mark.django_db
def test_cancel_of_a_pending_run_prints_the_outcome(superuser):
    # given
    number = billrun("create", "--target-date", "2026-01-01").strip()
    # when / then
    assert billrun("cancel", number).strip() == f"{number} Canceled"


@pytest.mark.django_db
def test_cancel_of_a_posted_run_is_refused_and_changes_nothing(superuser):
    # given
    ChargeFactory()
    number = completed_run("--auto-post")
    before = state()
    # when
    message = refused("cancel", number)
    # then
    assert message == (
        f"{number} is Posted: it can be canceled only when it is Pending or Completed."
    )
    assert state() == before


@pytest.mark.django_db
def test_delete_removes_a_canceled_run(superuser):
    # given
    ChargeFactory()
    number = completed_run()
    billrun("cancel", number)
    # when
    output = billrun("delete", number)
    # then
    assert output.strip() == f"{number} deleted"
    assert not BillRun.objects.exists()
    assert not Document.objects.exists()


@pytest.mark.django_db
def test_delete_of_a_completed_run_is_refused(superuser):
    # given
    ChargeFactory()
    number = completed_run()
    before = state()
    # when / then
    assert refused("delete", number) == (
        f"{number} is Completed: it can be deleted only when it is Error or Canceled."
    )
    assert state() == before


@pytest.mark.django_db
def test_retry_wait_bills_the_failed_accounts_and_prints_the_new_number(superuser):
    # given
    account = AccountFactory(number="A00000001", bill_to_email="")
    ChargeFactory(subscription__account=account)
    ChargeFactory(subscription__account__number="A00000002")
    number = completed_run()
    account.bill_to_email = "ap@example.com"
    account.save()
    # when
    lines = billrun("retry", number, "--wait").splitlines()
    # then
    retry = BillRun.objects.get(retry_of__number=number)
    assert lines == [retry.number, f"{retry.number} Completed"]
    summary = shown(retry.number, "--documents")
    assert summary["retry_of"] == number
    assert [d["account"] for d in summary["documents"]] == ["A00000001"]


@pytest.mark.django_db
def test_retry_without_wait_prints_the_new_pending_run(superuser):
    # given
    AccountFactory(bill_to_email="")
    number = completed_run()
    # when
    output = billrun("retry", number)
    # then
    retry = BillRun.objects.get(retry_of__number=number)
    assert output.strip() == retry.number
    assert retry.status == RunStatus.PENDING


@pytest.mark.django_db
def test_retry_of_a_run_without_failures_is_refused(superuser):
    # given
    ChargeFactory()
    number = completed_run()
    # when / then
    assert refused("retry", number) == f"{number} is Completed and has no failed accounts to retry."
    assert BillRun.objects.count() == 1


# --- show ----------------------------------------------------------------------


@pytest.mark.django_db
def test_show_json_has_the_documented_keys_and_types(clerk):
    # given
    # (every number hand-set: a factory's sequence, which runs on across the
    # tests of a worker, could otherwise hand out S00000009 first)
    AccountFactory(number="A00000003", bill_to_email="")
    ChargeFactory(subscription__account__number="A00000001", subscription__number="S00000001")
    ChargeFactory(
        subscription__account__number="A00000004",
        subscription__number="S00000009",
        currency="EUR",
    )
    number = completed_run("--user", "clerk")
    # when
    summary = shown(number)
    # then
    assert set(SUMMARY_TYPES) <= set(summary)
    assert set(summary) - set(SUMMARY_TYPES) <= ADDED_KEYS
    for key, expected in SUMMARY_TYPES.items():
        assert isinstance(summary[key], expected), key
    assert summary == summary | {
        "number": number,
        "status": "Completed",
        "has_errors": True,
        "target_date": "2026-01-01",
        "invoice_date": "2026-01-01",
        "created_by": "clerk",
        "schedule": None,
        "retry_of": None,
        "auto_post": False,
        "exclude_charge_types": [],
        "preview": False,
        "accounts_processed": 3,
        "accounts_failed": 2,
        "invoices": 1,
        "credit_memos": 0,
        "totals": {"USD": "100.00"},
        "failures": [
            {"account": "A00000003", "subscription": None, "reason": "Bill-to contact is missing"},
            {
                "account": "A00000004",
                "subscription": "S00000009",
                "reason": "Charge currency EUR differs from account currency USD",
            },
        ],
    }
    assert "documents" not in summary


@pytest.mark.django_db
def test_show_json_documents_matches_the_documented_example(superuser):
    # given the example of INTERFACES.md
    account = AccountFactory(number="A00000001")
    subscription = SubscriptionFactory(
        number="S00000001", account=account, start_date=datetime.date(2026, 1, 15)
    )
    plan = ChargeFactory(subscription=subscription, name="Pro plan")
    setup = OneTimeChargeFactory(subscription=subscription, name="Setup fee")
    number = completed_run("--target-date", "2026-02-01")
    # when
    [document] = shown(number, "--documents")["documents"]
    # then
    assert set(document) == DOCUMENT_KEYS
    assert all(set(item) == ITEM_KEYS for item in document["items"])
    assert document["number"].startswith("INV")
    del document["number"]
    assert document == {
        "type": "invoice",
        "account": "A00000001",
        "status": "Draft",
        "currency": "USD",
        "amount": "204.84",
        "balance": "204.84",
        "invoice_date": "2026-02-01",
        "due_date": "2026-03-03",
        "subtotal": "204.84",
        "taxes": [],
        "items": [
            {
                "subscription": "S00000001",
                "charge": "Pro plan",
                "service_start": "2026-01-15",
                "service_end": "2026-01-31",
                "amount": "54.84",
                "kind": "charge",
                "charge_number": plan.number,
                "quantity": "1",
            },
            {
                "subscription": "S00000001",
                "charge": "Pro plan",
                "service_start": "2026-02-01",
                "service_end": "2026-02-28",
                "amount": "100.00",
                "kind": "charge",
                "charge_number": plan.number,
                "quantity": "1",
            },
            {
                "subscription": "S00000001",
                "charge": "Setup fee",
                "service_start": "2026-01-15",
                "service_end": "2026-01-15",
                "amount": "50.00",
                "kind": "charge",
                "charge_number": setup.number,
                "quantity": "1",
            },
        ],
    }


@pytest.mark.django_db
def test_show_json_quantities_are_plain_decimals(superuser):
    # given a usage charge with 12,500 calls in January, one with none, and
    # a recurring charge for 0.3125 seats
    subscription = SubscriptionFactory(start_date=datetime.date(2026, 1, 1))
    used = UsageChargeFactory(subscription=subscription, name="Calls")
    for quantity in ("10000.000", "2500"):
        UsageRecordFactory(charge=used, date=datetime.date(2026, 1, 9), quantity=Decimal(quantity))
    idle = UsageChargeFactory(subscription=subscription, name="Idle")
    seats = ChargeFactory(subscription=subscription, name="Seats", quantity=Decimal("0.3125"))
    number = completed_run("--target-date", "2026-02-01")
    # when
    [document] = shown(number, "--documents")["documents"]
    items = document["items"]
    # then
    assert {item["charge_number"]: item["quantity"] for item in items} == {
        used.number: "12500",
        idle.number: "0",
        seats.number: "0.3125",
    }


@pytest.mark.django_db
def test_show_json_documents_gives_a_credit_memo_a_positive_amount(superuser):
    # given
    TenantSettings.objects.update_or_create(id=1, defaults={"advanced_ar_settlement": True})
    ChargeFactory(subscription__account__number="A00000001", amount=Decimal("-30.00"))
    ChargeFactory(subscription__account__number="A00000002")
    number = completed_run()
    # when
    summary = shown(number, "--documents")
    # then
    memo = next(d for d in summary["documents"] if d["type"] == "credit_memo")
    assert memo["number"].startswith("CM")
    assert (memo["amount"], memo["balance"]) == ("30.00", "30.00")
    assert [item["amount"] for item in memo["items"]] == ["-30.00"]
    assert memo["subtotal"] == "-30.00"
    assert (summary["invoices"], summary["credit_memos"]) == (1, 1)
    assert summary["totals"] == {"USD": "70.00"}


@pytest.mark.django_db
def test_show_json_documents_lists_canceled_documents_but_does_not_count_them(superuser):
    # given
    ChargeFactory()
    number = completed_run()
    billrun("cancel", number)
    # when
    summary = shown(number, "--documents")
    # then
    assert [d["status"] for d in summary["documents"]] == [DocumentStatus.CANCELED]
    assert (summary["invoices"], summary["totals"]) == (0, {})


@pytest.mark.django_db
def test_show_prints_a_readable_summary(superuser):
    # given
    AccountFactory(number="A00000003", bill_to_email="")
    ChargeFactory()
    number = completed_run()
    # when
    output = billrun("show", number)
    # then
    assert output.splitlines()[0] == f"{number}  Completed  (with errors)"
    assert "accounts processed 2 of 2, failed 1" in output
    assert "totals: USD 100.00" in output
    assert "failed: A00000003: Bill-to contact is missing" in output
    assert "excluded charge types: none" in output


@pytest.mark.django_db
def test_show_names_the_excluded_charge_types(superuser):
    # given
    ChargeFactory()
    number = completed_run("--exclude-charge-type", "usage", "--exclude-charge-type", "one_time")
    # when
    output = billrun("show", number)
    # then
    assert "  excluded charge types: one_time, usage" in output.splitlines()


# --- list ----------------------------------------------------------------------


@pytest.mark.django_db
def test_list_shows_runs_newest_first(superuser):
    # given
    numbers = [billrun("create", "--target-date", "2026-01-01").strip() for _ in range(3)]
    # when
    lines = billrun("list").splitlines()
    # then
    assert [line.split()[0] for line in lines] == numbers[::-1]


@pytest.mark.django_db
def test_list_filters_by_status(superuser):
    # given
    pending = billrun("create", "--target-date", "2026-01-01").strip()
    completed = completed_run()
    canceled = billrun("create", "--target-date", "2026-01-01").strip()
    billrun("cancel", canceled)
    # when / then
    assert [line.split()[0] for line in billrun("list", "--status", "Pending").splitlines()] == [
        pending
    ]
    assert [line.split()[0] for line in billrun("list", "--status", "Completed").splitlines()] == [
        completed
    ]
    assert billrun("list", "--status", "Posted") == ""


# --- the command line itself ---------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["launch"],
        ["post"],
        ["create", "--batch", "x"],
        ["create", "--bill-cycle-day", "monday"],
        ["create", "--frobnicate"],
        ["list", "--status", "Done"],
        ["show"],
    ],
    ids=lambda argv: " ".join(argv) or "nothing",
)
def test_a_malformed_command_line_is_refused(argv):
    # given / when
    with pytest.raises(CommandError) as error:
        billrun(*argv)
    # then
    assert str(error.value).startswith("Error: ")
    assert not BillRun.objects.exists()


def test_a_malformed_command_line_exits_2_from_a_shell():
    # given: parsing fails before the command touches a database
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "billing_site.settings_test"}
    # when
    result = subprocess.run(
        [sys.executable, "manage.py", "billrun", "create", "--batch", "x"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # then
    assert result.returncode == 2
    assert "argument --batch: must be a batch from 1 to 50, not 'x'" in result.stderr
    assert result.stdout == ""


@pytest.mark.django_db
def test_wait_exits_0_for_a_run_completed_with_failures(superuser):
    # given
    AccountFactory(bill_to_email="")
    # when (no CommandError: exit 0)
    output = billrun("create", "--target-date", "2026-01-01", "--wait")
    # then
    number = output.splitlines()[0]
    assert BillRun.objects.get(number=number).status == RunStatus.COMPLETED
    assert not BillRunChunk.objects.filter(status="pending").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["--account", "A00000001", "--batch", "1"],
        ["--account", "A00000001", "--bill-cycle-day", "5"],
        ["--account", "A00000001", "--bill-cycle-day", "all"],
        ["--subscription", "S00000001"],
        ["--bill-cycle-day", "1", "--bill-cycle-day", "2"],
        ["--account", "A00000001", "--account", "A00000002"],
    ],
)
def test_options_that_cannot_go_together_exit_2_from_a_shell(argv):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "billing_site.settings_test"}
    result = subprocess.run(
        [sys.executable, "manage.py", "billrun", "create", *argv],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--" in result.stderr and result.stdout == ""


@pytest.mark.django_db
@pytest.mark.parametrize("date", ["20260101", "2026-W01-1", "2026-1-1", "2026-13-01"])
def test_a_date_not_written_yyyy_mm_dd_is_refused(superuser, date):
    message = refused("create", "--target-date", date)
    assert message == f"Error: argument --target-date: {date!r} is not a date (expected YYYY-MM-DD)"
    assert not BillRun.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_refusal_is_the_one_line_on_stderr_from_a_shell(tmp_path):
    """The log records of the work done in the command (the task queue's,
    a failed run's traceback) stay off stderr unless -v 2 asks for them."""
    # given a database in a file, with a run whose posting will fail
    db = tmp_path / "db.sqlite3"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "billing_site.settings",
        "DATABASE_URL": f"sqlite:///{db}",
        "SECRET_KEY": "x" * 50,
        "Q_LOG_LEVEL": "INFO",  # django-q's per-task lines, off by default
    }

    def manage(*argv):
        return subprocess.run(
            [sys.executable, "manage.py", *argv],
            cwd=BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert manage("migrate", "-v", "0").returncode == 0
    # when a run is queued (django-q logs "Enqueued ...") and an unknown run is posted
    created = manage("billrun", "create", "--target-date", "2026-01-01")
    refused_post = manage("billrun", "post", "BR-99999999")
    loud = manage("billrun", "-v", "2", "create", "--target-date", "2026-01-01")
    # then
    assert created.returncode == 0 and created.stderr == ""
    assert refused_post.returncode == 1
    assert refused_post.stderr.strip().splitlines() == [
        "CommandError: No bill run has the number 'BR-99999999'."
    ]
    assert loud.returncode == 0 and "Enqueued" in loud.stderr


# --- empty and malformed values (issue 11, item 3) -------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["create", "--account", ""], "argument --account: must not be empty"),
        (["create", "--account", "  "], "argument --account: must not be empty"),
        (
            ["create", "--account", "A00000001", "--subscription", ""],
            "argument --subscription: must not be empty",
        ),
        (["create", "--user", ""], "argument --user: must not be empty"),
        (
            ["create", "--target-date", ""],
            "argument --target-date: '' is not a date (expected YYYY-MM-DD)",
        ),
        (
            ["create", "--invoice-date", ""],
            "argument --invoice-date: '' is not a date (expected YYYY-MM-DD)",
        ),
        (
            ["create", "--bill-cycle-day", "0"],
            "argument --bill-cycle-day: must be a day from 1 to 31 or all, not '0'",
        ),
        (
            ["create", "--bill-cycle-day", "-1"],
            "argument --bill-cycle-day: must be a day from 1 to 31 or all, not '-1'",
        ),
        (
            ["create", "--bill-cycle-day", ""],
            "argument --bill-cycle-day: must be a day from 1 to 31 or all, not ''",
        ),
        (["create", "--batch", "0"], "argument --batch: must be a batch from 1 to 50, not '0'"),
        (["create", "--batch", ""], "argument --batch: must be a batch from 1 to 50, not ''"),
        (
            ["create", "--target-date", "9999-12-31"],
            "argument --target-date: the date must be between 2000-01-01 and 2099-12-31, "
            "not 9999-12-31",
        ),
        (
            ["create", "--invoice-date", "1999-12-31"],
            "argument --invoice-date: the date must be between 2000-01-01 and 2099-12-31, "
            "not 1999-12-31",
        ),
        (["post", ""], "argument number: must not be empty"),
        (["post", "BR-00000001", "--user", ""], "argument --user: must not be empty"),
        (["cancel", "BR-00000001", "--user", ""], "argument --user: must not be empty"),
        (["delete", "BR-00000001", "--user", ""], "argument --user: must not be empty"),
        (["retry", "BR-00000001", "--user", ""], "argument --user: must not be empty"),
        (["email", "BR-00000001", "--user", ""], "argument --user: must not be empty"),
        (["show", ""], "argument number: must not be empty"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_an_empty_or_malformed_value_is_refused_never_a_default(argv, message, superuser):
    # given accounts that a run for "everyone" would bill
    AccountFactory(number="A00000001")
    ChargeFactory()
    # when
    got = refused(*argv)
    # then
    assert got == f"Error: {message}"
    assert not BillRun.objects.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["--account", ""],
        ["--bill-cycle-day", "0"],
        ["--user", ""],
        ["--target-date", ""],
    ],
    ids=lambda argv: " ".join(argv),
)
def test_an_empty_value_exits_2_from_a_shell(argv):
    # given: parsing fails before the command touches a database
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "billing_site.settings_test"}
    # when
    result = subprocess.run(
        [sys.executable, "manage.py", "billrun", "create", *argv],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # then
    assert result.returncode == 2
    assert f"argument {argv[0]}:" in result.stderr and result.stdout == ""


@pytest.mark.django_db
def test_an_empty_account_given_to_the_service_selects_no_one(superuser):
    # given
    ChargeFactory()
    # when
    with pytest.raises(services.InvalidRunParameters) as refusal:
        services.bill_run_create(target_date=JAN, account="", enqueue=False)
    # then
    assert refusal.value.errors == {"account": ["Enter the account number."]}
    assert not BillRun.objects.exists()


@pytest.mark.django_db
def test_bill_cycle_day_all_is_still_every_day(superuser):
    # when
    number = billrun("create", "--target-date", "2026-01-01", "--bill-cycle-day", "all").strip()
    # then
    assert BillRun.objects.get(number=number).bill_cycle_days == []


# --- a reader that stops early (issue 11, item 15) -------------------------------


class ClosedPipe(io.StringIO):
    """Standard output whose reader has gone (``| head -1`` after one line)."""

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.django_db
def test_list_into_a_closed_pipe_ends_quietly(superuser):
    # given
    billrun("create", "--target-date", "2026-01-01")
    billrun("create", "--target-date", "2026-01-02")
    # when (no exception: exit 0)
    call_command("billrun", "list", stdout=ClosedPipe(), stderr=io.StringIO())


@pytest.mark.django_db
def test_create_wait_into_a_closed_pipe_still_runs_the_run(superuser):
    # given
    ChargeFactory()
    # when
    call_command("billrun", "create", "--target-date", "2026-01-01", "--wait", stdout=ClosedPipe())
    # then
    run = BillRun.objects.get()
    assert run.status == RunStatus.COMPLETED
    assert run.invoices_count == 1


@pytest.mark.django_db
def test_create_wait_into_a_closed_pipe_still_exits_1_on_error(superuser, monkeypatch):
    # given
    ChargeFactory()

    def fails(chunk_id, *, cluster=""):
        raise RuntimeError("disk full")

    monkeypatch.setattr(generation, "process_chunk", fails)
    # when / then
    with pytest.raises(CommandError, match="ended in Error"):
        call_command(
            "billrun", "create", "--target-date", "2026-01-01", "--wait", stdout=ClosedPipe()
        )


@pytest.mark.django_db(transaction=True)
def test_output_piped_into_head_exits_0_without_a_traceback(tmp_path):
    # given a database in a file with a few runs
    db = tmp_path / "db.sqlite3"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "billing_site.settings",
        "DATABASE_URL": f"sqlite:///{db}",
        "SECRET_KEY": "x" * 50,
    }

    def manage(*argv, **kwargs):
        return subprocess.Popen(
            [sys.executable, "manage.py", *argv],
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            **kwargs,
        )

    assert manage("migrate", "-v", "0").wait(timeout=120) == 0
    for _ in range(3):
        assert manage("billrun", "create", "--target-date", "2026-01-01").wait(timeout=60) == 0

    # when the reader is gone before the first line (the surest broken pipe)
    listing = manage("billrun", "list")
    listing.stdout.close()
    listing.wait(timeout=60)
    # and when it reads one line and goes, as head -1 does
    waiting = manage("billrun", "create", "--target-date", "2026-01-01", "--wait")
    first_line = waiting.stdout.readline()
    waiting.stdout.close()
    waiting.wait(timeout=120)

    # then
    assert (listing.returncode, listing.stderr.read()) == (0, "")
    assert first_line.startswith("BR-")
    assert (waiting.returncode, waiting.stderr.read()) == (0, "")
