"""`manage.py amend FILE [--user USERNAME]` (INTERFACES.md, "Subscription
changes"): a JSON list of changes applied in order, all or nothing; every
refused change or malformed field on stderr with its JSON path, exit 1."""

import datetime
import io
import json
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from customers.management.commands.amend import Command as AmendCommand
from customers.models import Charge, ChargePrice, Subscription, SubscriptionChange
from tests.factories import (
    ChargeFactory,
    OneTimeChargeFactory,
    SubscriptionFactory,
    UsageChargeFactory,
)

pytestmark = pytest.mark.django_db

JAN = datetime.date(2026, 1, 1)

# INTERFACES.md's example, as it is written there.
INTERFACES_EXAMPLE = {
    "changes": [
        {
            "type": "add_charge",
            "subscription": "S00000001",
            "charge": {
                "number": "C00000009",
                "name": "Support",
                "type": "recurring",
                "amount": "50.00",
                "period": "month",
                "start_date": "2026-03-01",
            },
        },
        {
            "type": "change_price",
            "charge": "C00000003",
            "effective_date": "2026-03-11",
            "amount": "160.00",
        },
        {
            "type": "change_price",
            "charge": "C00000003",
            "effective_date": "2026-04-01",
            "quantity": "3",
        },
        {
            "type": "change_price",
            "charge": "C00000004",
            "effective_date": "2026-04-01",
            "pricing": {"model": "per_unit", "unit_price": "0.002"},
        },
        {"type": "remove_charge", "charge": "C00000005", "effective_date": "2026-03-11"},
        {
            "type": "cancel_subscription",
            "subscription": "S00000002",
            "effective_date": "2026-03-11",
        },
    ]
}


@pytest.fixture
def book():
    first = SubscriptionFactory(number="S00000001", start_date=JAN)
    second = SubscriptionFactory(number="S00000002", account=first.account, start_date=JAN)
    ChargeFactory(number="C00000003", subscription=first, start_date=JAN)
    UsageChargeFactory(number="C00000004", subscription=first, start_date=JAN)
    OneTimeChargeFactory(number="C00000005", subscription=first, start_date=JAN)
    ChargeFactory(number="C00000006", subscription=second, start_date=JAN)
    return {"first": first, "second": second}


def run_amend(*args, stdin=None):
    """Run the command; return (exit code, stdout, stderr lines)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("amend", *args, stdout=out, stderr=err, stdin=stdin)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue().splitlines()


def amend_file(tmp_path, document, *args):
    path = tmp_path / "changes.json"
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    return run_amend(str(path), *args)


def test_the_interfaces_example_applies(tmp_path, book, superuser):
    # when
    code, out, err = amend_file(tmp_path, INTERFACES_EXAMPLE)

    # then
    assert (code, out.strip(), err) == (0, "applied 6 changes", [])
    assert Charge.objects.get(number="C00000009").amount == Decimal("50.00")
    assert list(
        ChargePrice.objects.filter(charge__number="C00000003").values_list(
            "effective_date", "amount", "quantity"
        )
    ) == [
        (datetime.date(2026, 3, 11), Decimal("160.00"), Decimal("1")),
        (datetime.date(2026, 4, 1), Decimal("160.00"), Decimal("3")),
    ]
    assert Charge.objects.get(number="C00000005").end_date == JAN
    second = Subscription.objects.get(number="S00000002")
    assert (second.status, second.cancel_date) == ("Canceled", datetime.date(2026, 3, 11))
    assert Charge.objects.get(number="C00000006").end_date == datetime.date(2026, 3, 11)
    # made by the first superuser, the default
    assert set(SubscriptionChange.objects.values_list("made_by", flat=True)) == {superuser.pk}


def test_standard_input(book):
    document = {
        "changes": [
            {"type": "remove_charge", "charge": "C00000003", "effective_date": "2026-03-11"}
        ]
    }

    code, out, _ = run_amend("-", stdin=io.BytesIO(json.dumps(document).encode()))

    assert (code, out.strip()) == (0, "applied 1 changes")
    assert Charge.objects.get(number="C00000003").end_date == datetime.date(2026, 3, 11)


def test_user_is_recorded_as_who_made_the_changes(tmp_path, book, superuser, clerk):
    code, _, _ = amend_file(tmp_path, INTERFACES_EXAMPLE, "--user", "clerk")

    assert code == 0
    assert set(SubscriptionChange.objects.values_list("made_by", flat=True)) == {clerk.pk}


def test_without_a_superuser_the_changes_record_no_one(tmp_path, book):
    code, _, _ = amend_file(tmp_path, INTERFACES_EXAMPLE)

    assert code == 0
    assert set(SubscriptionChange.objects.values_list("made_by", flat=True)) == {None}


def test_an_unknown_user_is_refused_and_nothing_applied(tmp_path, book):
    # call_command raises what the shell prints as "CommandError: ..." with exit 1
    with pytest.raises(CommandError, match=r"^No user is named 'nobody'\.$"):
        amend_file(tmp_path, INTERFACES_EXAMPLE, "--user", "nobody")

    assert not SubscriptionChange.objects.exists()


def test_an_empty_user_is_a_malformed_command_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        AmendCommand().run_from_argv(["manage.py", "amend", str(tmp_path), "--user", ""])

    assert exited.value.code == 2
    assert "argument --user: must not be empty" in capsys.readouterr().err


def test_a_refused_change_prints_its_path_and_applies_nothing(tmp_path, book):
    # given: the example, then a change before one of its own
    document = json.loads(json.dumps(INTERFACES_EXAMPLE))
    document["changes"].insert(
        3,
        {
            "type": "change_price",
            "charge": "C00000003",
            "effective_date": "2026-03-01",
            "amount": "1",
        },
    )

    # when
    code, out, err = amend_file(tmp_path, document)

    # then
    assert (code, out) == (1, "")
    assert err == [
        "changes[3].effective_date: C00000003: a change effective 2026-03-01 is before the "
        "change of 2026-04-01"
    ]
    assert not SubscriptionChange.objects.exists()
    assert not Charge.objects.filter(number="C00000009").exists()
    assert Subscription.objects.get(number="S00000002").status == "Active"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {
                "type": "remove_charge",
                "charge": "C00000003",
                "effective_date": "2026-03-11",
                "why": "x",
            },
            ["changes[0].why: unknown field"],
        ),
        (
            {"type": "remove_charge", "charge": 3, "effective_date": "2026-03-11"},
            ["changes[0].charge: must be a string, not a number"],
        ),
        (
            {"type": "remove_charge", "charge": "C00000003", "effective_date": "2026-02-30"},
            ['changes[0].effective_date: is not a calendar date: "2026-02-30"'],
        ),
        (
            {"type": "remove_charge", "charge": "C00000003"},
            ["changes[0].effective_date: required field is missing"],
        ),
        (
            {"type": "rename", "charge": "C00000003"},
            [
                'changes[0].type: must be one of "add_charge", "change_price", "remove_charge", '
                '"cancel_subscription", not "rename"'
            ],
        ),
        (
            {"type": "change_price", "charge": "C00000003", "effective_date": "2026-03-11"},
            [
                "changes[0]: a change_price gives the new amount and/or quantity (recurring) or "
                "the new pricing (usage)"
            ],
        ),
        (
            {
                "type": "change_price",
                "charge": "C00000003",
                "effective_date": "2026-03-11",
                "quantity": "0",
            },
            ["changes[0].quantity: must be above 0, not 0"],
        ),
        (
            {
                "type": "change_price",
                "charge": "C00000099",
                "effective_date": "2026-03-11",
                "amount": "1",
            },
            ["changes[0].charge: no charge has the number C00000099"],
        ),
        (
            {"type": "add_charge", "subscription": "S00000001", "charge": []},
            ["changes[0].charge: must be an object, not an array"],
        ),
        (
            {
                "type": "cancel_subscription",
                "subscription": "S00000001",
                "effective_date": "2026-03-11",
                "charge": "C00000003",
            },
            ["changes[0].charge: unknown field"],
        ),
        ("not an object", ["changes[0]: must be an object, not a string"]),
    ],
)
def test_malformed_changes_are_printed_with_their_paths(tmp_path, book, change, expected):
    before = list(Charge.objects.order_by("pk").values())

    code, _, err = amend_file(tmp_path, {"changes": [change]})

    assert code == 1
    assert err[: len(expected)] == expected
    assert list(Charge.objects.order_by("pk").values()) == before


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ([], ['(top level): must be a JSON object with a "changes" array, not an array']),
        ({}, ["changes: required field is missing"]),
        ({"changes": {}}, ["changes: must be an array, not an object"]),
        ({"changes": [], "more": 1}, ["(top level).more: unknown field"]),
    ],
)
def test_a_malformed_document_is_refused(tmp_path, book, document, expected):
    code, _, err = amend_file(tmp_path, document)

    assert (code, err) == (1, expected)


def test_a_file_that_is_not_json_is_refused(tmp_path, book):
    code, _, err = amend_file(tmp_path, '{"changes": [')

    assert code == 1
    assert len(err) == 1


def test_every_malformed_change_of_a_file_is_reported(tmp_path, book):
    code, _, err = amend_file(
        tmp_path,
        {
            "changes": [
                {"type": "remove_charge", "charge": "C00000003", "effective_date": "1999-12-31"},
                {"type": "remove_charge", "charge": "C00000003", "effective_date": "2026-03-11"},
                {"type": "cancel_subscription", "subscription": "", "effective_date": "2026-03-11"},
            ]
        },
    )

    assert code == 1
    assert err == [
        "changes[0].effective_date: must be between 2000-01-01 and 2099-12-31, not 1999-12-31",
        "changes[2].subscription: must not be empty",
    ]


def test_an_empty_list_applies_nothing(tmp_path, book):
    code, out, _ = amend_file(tmp_path, {"changes": []})

    assert (code, out.strip()) == (0, "applied 0 changes")
