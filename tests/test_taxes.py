"""Tax rates and what carries them (BILLING_RULES.md, Taxes; INTERFACES.md,
"Tax rates" and "Loading customers"): `manage.py tax_rate`, the one service
that records every change (`customers.services.tax_rate_set`), an account's
ordered tax codes and a charge's `taxable` in the import and in `amend`, the
admin, and the pages that show them."""

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
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.forms import modelform_factory
from django.urls import reverse

from customers.management.commands.tax_rate import Command as TaxRateCommand
from customers.models import (
    Account,
    AccountTaxCode,
    Charge,
    TaxRate,
    TaxRateChange,
)
from customers.selectors import account_tax_codes
from customers.services import TaxRateRefused, tax_rate_set
from invoices.admin_customers import ChargeForm
from tests.factories import AccountFactory, ChargeFactory, OneTimeChargeFactory
from tests.test_changes import charge_form_data

BASE_DIR = Path(__file__).resolve().parent.parent
SECOND = Path(__file__).parent / "data" / "second"
JAN = datetime.date(2026, 1, 1)


def tax_rate(*args):
    """Run the command; return its stdout lines (a refusal raises CommandError)."""
    out = io.StringIO()
    call_command("tax_rate", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue().splitlines()


def from_a_shell(capsys, *args):
    """Parse the command line as a shell would: (exit status, stdout, stderr)."""
    capsys.readouterr()
    try:
        TaxRateCommand().run_from_argv(["manage.py", "tax_rate", *args])
        code = 0
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def rows():
    """Every tax rate and every recorded change, as values."""
    return (
        list(TaxRate.objects.order_by("code").values_list("code", "name", "rate", "updated_at")),
        list(
            TaxRateChange.objects.order_by("id").values_list(
                "tax_rate__code", "changed_by", "old_name", "new_name", "old_rate", "new_rate"
            )
        ),
    )


# --- the command ----------------------------------------------------------------


@pytest.mark.django_db
def test_it_creates_a_rate_prints_it_and_records_who_created_it(superuser):
    # when
    printed = tax_rate("US-SF", "0.8625", "--name", "San Francisco")

    # then
    assert printed == ["US-SF  0.8625  San Francisco"]
    rate = TaxRate.objects.get()
    assert (rate.code, rate.name, rate.rate) == ("US-SF", "San Francisco", Decimal("0.8625"))
    change = rate.changes.get()
    assert (change.changed_by, change.old_name, change.old_rate) == (superuser, "", None)
    assert (change.new_name, change.new_rate) == ("San Francisco", Decimal("0.8625"))


@pytest.mark.django_db
def test_a_new_rate_without_a_name_is_named_by_its_code():
    assert tax_rate("GST", "7.5") == ["GST  7.5  GST"]
    assert TaxRate.objects.get().name == "GST"


@pytest.mark.django_db
def test_a_change_is_recorded_with_the_old_and_new_name_and_rate(django_user_model):
    # given
    tax_rate("VAT20", "20", "--name", "VAT")
    django_user_model.objects.create_user("alice")

    # when: the rate, then the name
    assert tax_rate("VAT20", "19.6", "--user", "alice") == ["VAT20  19.6  VAT"]
    assert tax_rate("VAT20", "19.6", "--name", "TVA", "--user", "alice") == ["VAT20  19.6  TVA"]

    # then
    rate = TaxRate.objects.get()
    assert (rate.name, rate.rate) == ("TVA", Decimal("19.6"))
    assert list(
        rate.changes.order_by("id").values_list(
            "changed_by__username", "old_name", "new_name", "old_rate", "new_rate"
        )
    ) == [
        (None, "", "VAT", None, Decimal("20")),
        ("alice", "VAT", "VAT", Decimal("20"), Decimal("19.6")),
        ("alice", "VAT", "TVA", Decimal("19.6"), Decimal("19.6")),
    ]


@pytest.mark.django_db
def test_setting_what_a_rate_already_is_records_nothing():
    tax_rate("VAT20", "20", "--name", "VAT")
    before = rows()

    assert tax_rate("VAT20", "20.0000") == ["VAT20  20  VAT"]

    assert rows() == before


@pytest.mark.django_db
def test_the_list_prints_every_rate_by_code():
    tax_rate("US-SF", "0.8625", "--name", "San Francisco")
    tax_rate("US-CA", "7.25", "--name", "California")
    tax_rate("EXEMPT", "0")
    tax_rate("MAX", "100")

    assert tax_rate("--list") == [
        "EXEMPT  0  EXEMPT",
        "MAX  100  MAX",
        "US-CA  7.25  California",
        "US-SF  0.8625  San Francisco",
    ]


@pytest.mark.django_db
def test_the_list_of_no_rates_is_empty():
    assert tax_rate("--list") == []


BAD_ARGUMENTS = [
    (["VAT20", "100.00001"], "argument RATE: must be a percent from 0 to 100, not 100.00001"),
    (["VAT20", "101"], "argument RATE: must be a percent from 0 to 100, not 101"),
    (["VAT20", "-1"], "argument RATE: must be a percent from 0 to 100, not -1"),
    (["VAT20", "1.12345"], "argument RATE: has at most 4 decimal places, not 1.12345"),
    (["VAT20", "20.00000"], "argument RATE: has at most 4 decimal places, not 20.00000"),
    (["VAT20", "abc"], "argument RATE: must be a percent written as a plain decimal"),
    (["VAT20", "1e1"], "argument RATE: must be a percent written as a plain decimal"),
    (["VAT20", "NaN"], "argument RATE: must be a percent written as a plain decimal"),
    (["VAT20", "7,25"], "argument RATE: must be a percent written as a plain decimal"),
    (["VAT20", "20%"], "argument RATE: must be a percent written as a plain decimal"),
    (["VAT20", ""], "argument RATE: must be a percent written as a plain decimal"),
    (["vat20", "20"], "argument CODE: must be 1 to 20 characters of A-Z, 0-9, _ and -"),
    (["VAT 20", "20"], "argument CODE: must be 1 to 20 characters of A-Z, 0-9, _ and -"),
    (["A" * 21, "20"], "argument CODE: must be 1 to 20 characters of A-Z, 0-9, _ and -"),
    (["", "20"], "argument CODE: must be 1 to 20 characters of A-Z, 0-9, _ and -"),
    (["VÄT", "20"], "argument CODE: must be 1 to 20 characters of A-Z, 0-9, _ and -"),
    (["VAT20", "20", "--name", ""], "argument --name: must not be empty"),
    (["VAT20", "20", "--name", "x" * 256], "argument --name: must be at most 255 characters"),
    (["VAT20", "20", "--user", ""], "argument --user: must not be empty"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"), BAD_ARGUMENTS, ids=[" ".join(a)[:30] for a, _ in BAD_ARGUMENTS]
)
def test_a_bad_code_rate_or_name_is_refused_and_changes_nothing(capsys, superuser, args, message):
    # given a rate the command would otherwise change
    tax_rate("VAT20", "20", "--name", "VAT")
    before = rows()

    # when
    code, out, err = from_a_shell(capsys, *args)

    # then: a malformed command line, as the project's other commands say it
    assert code == 2
    assert out == ""
    assert message in err
    assert rows() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args",
    [["--list", "VAT20"], ["--list", "--name", "VAT"], ["VAT20"], []],
    ids=["list with a code", "list with a name", "a code alone", "nothing"],
)
def test_list_goes_alone_and_a_code_needs_its_rate(args):
    tax_rate("VAT20", "20", "--name", "VAT")
    before = rows()

    with pytest.raises(CommandError) as refused:
        tax_rate(*args)

    assert refused.value.returncode == 2
    assert rows() == before


@pytest.mark.django_db
def test_an_unknown_user_is_refused_and_nothing_changes():
    tax_rate("VAT20", "20", "--name", "VAT")
    before = rows()

    with pytest.raises(CommandError, match=r"^No user is named 'nobody'\.$") as refused:
        tax_rate("VAT20", "19.6", "--user", "nobody")

    assert refused.value.returncode == 1
    assert rows() == before


def test_a_bad_rate_exits_2_from_a_shell():
    # given: parsing fails before the command touches a database
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "billing_site.settings_test"}

    # when
    result = subprocess.run(
        [sys.executable, "manage.py", "tax_rate", "VAT20", "100.00001"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    # then
    assert result.returncode == 2
    assert "argument RATE: must be a percent from 0 to 100, not 100.00001" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


# --- the service and the database ---------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("code", "rate", "name", "message"),
    [
        ("VAT20", Decimal("100.0001"), None, "rate: must be a percent from 0 to 100"),
        ("VAT20", Decimal("-0.0001"), None, "rate: must be a percent from 0 to 100"),
        ("VAT20", Decimal("0.00001"), None, "rate: has at most 4 decimal places"),
        ("VAT20", Decimal("NaN"), None, "rate: must be a percent such as 7.25"),
        ("VAT20", 20.0, None, "rate: must be a percent such as 7.25"),
        ("VAT20", "twenty", None, "rate: must be a percent written as a plain decimal"),
        ("vat", Decimal(20), None, "code: must be 1 to 20 characters"),
        ("VAT20", Decimal(20), "  ", "name: must not be empty"),
    ],
)
def test_the_service_refuses_what_the_command_refuses(code, rate, name, message):
    tax_rate_set("VAT20", "20", name="VAT")
    before = rows()

    with pytest.raises(TaxRateRefused, match=message):
        tax_rate_set(code, rate, name=name)

    assert rows() == before


@pytest.mark.django_db
def test_rates_are_stored_exactly_at_four_places():
    for code, rate in [("A", "0.0001"), ("B", "99.9999"), ("C", "100"), ("D", "0.8625")]:
        tax_rate_set(code, rate)

    assert dict(TaxRate.objects.values_list("code", "rate")) == {
        "A": Decimal("0.0001"),
        "B": Decimal("99.9999"),
        "C": Decimal("100"),
        "D": Decimal("0.8625"),
    }


@pytest.mark.django_db
def test_the_database_refuses_a_rate_outside_0_to_100():
    rate = tax_rate_set("VAT20", "20")

    with pytest.raises(IntegrityError), transaction.atomic():
        TaxRate.objects.filter(pk=rate.pk).update(rate=Decimal("100.5"))


@pytest.mark.django_db
def test_a_rate_in_use_or_with_history_cannot_be_deleted():
    rate = tax_rate_set("VAT20", "20")
    AccountTaxCode.objects.create(account=AccountFactory(), tax_rate=rate, position=1)

    with pytest.raises(ProtectedError), transaction.atomic():
        rate.delete()

    assert TaxRate.objects.filter(pk=rate.pk).exists()


@pytest.mark.django_db
def test_account_tax_codes_gives_each_accounts_codes_in_order_in_one_query(
    django_assert_num_queries,
):
    # given
    vat, state, city = (tax_rate_set(c, r) for c, r in [("VAT20", "20"), ("ST", "6"), ("CI", "1")])
    stacked, taxed, exempt = AccountFactory(), AccountFactory(), AccountFactory()
    AccountTaxCode.objects.create(account=stacked, tax_rate=city, position=2)
    AccountTaxCode.objects.create(account=stacked, tax_rate=state, position=1)
    AccountTaxCode.objects.create(account=taxed, tax_rate=vat, position=1)

    # when
    with django_assert_num_queries(1):
        codes = account_tax_codes([stacked.pk, taxed.pk, exempt.pk])

    # then
    assert codes == {stacked.pk: ["ST", "CI"], taxed.pk: ["VAT20"]}


# --- the import and amend -------------------------------------------------------


def run_import(document, tmp_path):
    path = tmp_path / "book.json"
    path.write_text(json.dumps(document))
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("import_accounts", str(path), stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue().splitlines()


def customer(number, **fields):
    return {
        "number": number,
        "name": f"Customer {number}",
        "currency": "USD",
        "bill_cycle_day": 1,
        "subscriptions": [
            {
                "number": f"S-{number}",
                "start_date": "2026-01-01",
                "charges": [
                    {
                        "name": "Plan",
                        "type": "recurring",
                        "amount": "100.00",
                        "period": "month",
                        "start_date": "2026-01-01",
                    },
                    {
                        "name": "Setup fee",
                        "type": "one_time",
                        "amount": "50.00",
                        "start_date": "2026-01-01",
                        "taxable": False,
                    },
                ],
            }
        ],
        **fields,
    }


@pytest.fixture
def rates():
    for code, rate in [("VAT20", "20"), ("US-CA", "7.25"), ("US-SF", "0.8625")]:
        tax_rate_set(code, rate)


@pytest.mark.django_db
def test_the_import_stores_tax_codes_in_their_order_and_taxable(tmp_path, rates):
    # given
    document = {
        "accounts": [
            customer("A1", tax_codes=["US-SF", "US-CA"]),
            customer("A2", tax_codes=["VAT20"]),
            customer("A3", tax_codes=[]),
            customer("A4"),
        ]
    }

    # when
    code, out, err = run_import(document, tmp_path)

    # then
    assert (code, err) == (0, [])
    ids = dict(Account.objects.values_list("number", "id"))
    assert account_tax_codes(ids.values()) == {
        ids["A1"]: ["US-SF", "US-CA"],
        ids["A2"]: ["VAT20"],
    }
    assert list(
        AccountTaxCode.objects.filter(account_id=ids["A1"])
        .order_by("position")
        .values_list("position", flat=True)
    ) == [1, 2]
    assert set(Charge.objects.values_list("name", "taxable")) == {
        ("Plan", True),
        ("Setup fee", False),
    }


TAX_REFUSALS = [
    (["XX"], "accounts[1].tax_codes[0]: no tax rate has the code XX (tax_rate --list shows them)"),
    (
        ["VAT20", "US-CA", "VAT20"],
        "accounts[1].tax_codes[2]: tax code VAT20 appears more than once (first at "
        "accounts[1].tax_codes[0])",
    ),
    (["vat20"], "accounts[1].tax_codes[0]: must be 1 to 20 characters of A-Z, 0-9, _ and -"),
    ([20], "accounts[1].tax_codes[0]: must be a string, not a number"),
    ([None], "accounts[1].tax_codes[0]: must be a string, not null"),
    ("VAT20", "accounts[1].tax_codes: must be an array of tax codes"),
    ({"code": "VAT20"}, "accounts[1].tax_codes: must be an array of tax codes"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("codes", "message"), TAX_REFUSALS, ids=[m for _, m in TAX_REFUSALS])
def test_bad_tax_codes_are_refused_with_their_path_and_nothing_is_imported(
    tmp_path, rates, codes, message
):
    # given a good account, then one with bad codes
    document = {"accounts": [customer("A1", tax_codes=["VAT20"]), customer("A2", tax_codes=codes)]}

    # when
    code, out, err = run_import(document, tmp_path)

    # then
    assert (code, out) == (1, "")
    assert len(err) == 1 and err[0].startswith(message), err
    assert not Account.objects.exists()
    assert not AccountTaxCode.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["false", 0, 1, [], {}])
def test_a_taxable_that_is_not_a_boolean_is_refused(tmp_path, value):
    document = {"accounts": [customer("A1")]}
    document["accounts"][0]["subscriptions"][0]["charges"][0]["taxable"] = value

    code, _, err = run_import(document, tmp_path)

    assert code == 1
    assert len(err) == 1
    assert err[0].startswith(
        "accounts[0].subscriptions[0].charges[0].taxable: must be true or false, not "
    )
    assert not Charge.objects.exists()


@pytest.mark.django_db
def test_a_null_taxable_is_the_default_true(tmp_path):
    document = {"accounts": [customer("A1")]}
    document["accounts"][0]["subscriptions"][0]["charges"][1]["taxable"] = None

    code, _, err = run_import(document, tmp_path)

    assert (code, err) == (0, [])
    assert set(Charge.objects.values_list("taxable", flat=True)) == {True}


@pytest.mark.django_db
@pytest.mark.parametrize("book", sorted(p.name for p in SECOND.glob("second-*.book.json")))
def test_the_second_release_books_import_with_their_taxes(tmp_path, book):
    # given the book's rates, made as its steps make them
    document = json.loads((SECOND / book).read_text())
    for rate in document.pop("tax_rates"):
        tax_rate("--name", rate["name"], rate["code"], rate["rate"])

    # when
    code, _, err = run_import(document, tmp_path)

    # then every account has its codes in order and every charge its taxable
    assert (code, err) == (0, [])
    ids = dict(Account.objects.values_list("number", "id"))
    expected = {
        ids[acc["number"]]: acc["tax_codes"] for acc in document["accounts"] if acc.get("tax_codes")
    }
    assert account_tax_codes(ids.values()) == expected
    taxable = dict(Charge.objects.values_list("number", "taxable"))
    assert taxable == {
        charge["number"]: charge.get("taxable", True)
        for acc in document["accounts"]
        for sub in acc.get("subscriptions", [])
        for charge in sub.get("charges", [])
    }
    assert False in taxable.values()


def amend(document, tmp_path):
    path = tmp_path / "changes.json"
    path.write_text(json.dumps(document))
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("amend", str(path), stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, err.getvalue().splitlines()


def add_charge(subscription, **fields):
    return {
        "type": "add_charge",
        "subscription": subscription.number,
        "charge": {
            "name": "Onboarding",
            "type": "one_time",
            "amount": "75.00",
            "start_date": "2026-03-01",
            **fields,
        },
    }


@pytest.mark.django_db
def test_amend_adds_a_charge_with_taxable_as_the_import_takes_it(tmp_path):
    # given
    subscription = ChargeFactory(start_date=JAN).subscription

    # when
    code, err = amend(
        {
            "changes": [
                add_charge(subscription, taxable=False, number="C-UNTAXED"),
                add_charge(subscription, number="C-TAXED"),
            ]
        },
        tmp_path,
    )

    # then
    assert (code, err) == (0, [])
    assert Charge.objects.get(number="C-UNTAXED").taxable is False
    assert Charge.objects.get(number="C-TAXED").taxable is True
    change = subscription.changes.get(charge__number="C-UNTAXED")
    assert change.after["taxable"] is False


@pytest.mark.django_db
def test_amend_refuses_a_taxable_that_is_not_a_boolean(tmp_path):
    subscription = ChargeFactory(start_date=JAN).subscription
    before = Charge.objects.count()

    code, err = amend({"changes": [add_charge(subscription, taxable="no")]}, tmp_path)

    assert code == 1
    assert err == ["changes[0].charge.taxable: must be true or false, not a string"]
    assert Charge.objects.count() == before


# --- the admin ------------------------------------------------------------------


def inline_data(response):
    """The management data of every inline of an admin page, and the fields
    of the forms it shows, as the page would post them back."""
    data = {}
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        for name, field in formset.management_form.fields.items():
            value = formset.management_form.initial.get(name, field.initial)
            data[f"{formset.prefix}-{name}"] = "" if value is None else str(value)
        for form in formset.initial_forms:
            for name in form.fields:
                value = form.initial.get(name)
                if value is None:
                    continue
                data[form.add_prefix(name)] = str(getattr(value, "pk", value))
    return data


@pytest.mark.django_db
def test_a_rate_added_and_changed_in_the_admin_is_recorded_with_its_operator(admin_client):
    # when added
    add_url = reverse("admin:customers_taxrate_add")
    page = admin_client.get(add_url)
    response = admin_client.post(
        add_url, {"code": "VAT20", "name": "VAT", "rate": "20", **inline_data(page)}
    )

    # then
    assert response.status_code == 302, response.context and response.context["errors"]
    rate = TaxRate.objects.get()
    admin = rate.changes.get().changed_by
    assert admin.username == "admin"

    # when changed
    change_url = reverse("admin:customers_taxrate_change", args=[rate.pk])
    page = admin_client.get(change_url)
    assert "code" not in page.context["adminform"].form.fields
    response = admin_client.post(change_url, {"name": "VAT", "rate": "19.6", **inline_data(page)})

    # then
    assert response.status_code == 302
    rate.refresh_from_db()
    assert rate.rate == Decimal("19.6")
    assert list(rate.changes.order_by("id").values_list("changed_by", "old_rate", "new_rate")) == [
        (admin.pk, None, Decimal("20")),
        (admin.pk, Decimal("20"), Decimal("19.6")),
    ]
    page = admin_client.get(change_url).content.decode()
    assert "19.6" in page and "admin" in page


@pytest.mark.django_db
@pytest.mark.parametrize("rate", ["100.00001", "-1", "1.12345", "abc"])
def test_the_admin_refuses_a_bad_rate_and_changes_nothing(admin_client, rate):
    tax_rate_set("VAT20", "20", name="VAT")
    url = reverse("admin:customers_taxrate_change", args=[TaxRate.objects.get().pk])
    page = admin_client.get(url)
    before = rows()

    response = admin_client.post(url, {"name": "VAT", "rate": rate, **inline_data(page)})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["rate"]
    assert rows() == before


@pytest.mark.django_db
def test_the_admin_never_deletes_a_rate(admin_client):
    rate = tax_rate_set("VAT20", "20")

    response = admin_client.post(
        reverse("admin:customers_taxrate_delete", args=[rate.pk]), {"post": "yes"}
    )

    assert response.status_code == 403
    assert TaxRate.objects.filter(pk=rate.pk).exists()


@pytest.mark.django_db
def test_the_account_admin_edits_its_tax_codes_in_order(admin_client, rates):
    # given an account with VAT20
    account = AccountFactory()
    AccountTaxCode.objects.create(
        account=account, tax_rate=TaxRate.objects.get(code="VAT20"), position=1
    )
    url = reverse("admin:customers_account_change", args=[account.pk])
    page = admin_client.get(url)
    data = {**page.context["adminform"].form.initial, **inline_data(page)}
    data = {k: v for k, v in data.items() if v is not None and k != "created_at"}
    city, state = TaxRate.objects.get(code="US-SF"), TaxRate.objects.get(code="US-CA")

    # when: VAT20 removed, the state and the city added, the city given second
    data.update(
        {
            "tax_codes-0-DELETE": "on",
            "tax_codes-1-position": "2",
            "tax_codes-1-tax_rate": str(city.pk),
            "tax_codes-2-position": "1",
            "tax_codes-2-tax_rate": str(state.pk),
            "tax_codes-TOTAL_FORMS": "3",
        }
    )
    response = admin_client.post(url, data)

    # then
    assert response.status_code == 302, response.context and response.context["errors"]
    assert account_tax_codes([account.pk]) == {account.pk: ["US-CA", "US-SF"]}
    assert list(account.tax_codes.order_by("position").values_list("position", flat=True)) == [
        1,
        2,
    ]


@pytest.mark.django_db
def test_the_account_admin_refuses_a_code_given_twice(admin_client, rates):
    account = AccountFactory()
    url = reverse("admin:customers_account_change", args=[account.pk])
    page = admin_client.get(url)
    data = {**page.context["adminform"].form.initial, **inline_data(page)}
    data = {k: v for k, v in data.items() if v is not None and k != "created_at"}
    vat = TaxRate.objects.get(code="VAT20")
    data.update(
        {
            "tax_codes-0-position": "1",
            "tax_codes-0-tax_rate": str(vat.pk),
            "tax_codes-1-position": "2",
            "tax_codes-1-tax_rate": str(vat.pk),
            "tax_codes-TOTAL_FORMS": "2",
        }
    )

    response = admin_client.post(url, data)

    assert response.status_code == 200
    assert not AccountTaxCode.objects.exists()


@pytest.mark.django_db
def test_taxable_is_edited_by_hand_until_the_charge_is_billed(admin_client):
    # given
    charge = ChargeFactory(start_date=JAN)
    url = reverse("admin:customers_charge_change", args=[charge.pk])
    assert "taxable" in admin_client.get(url).context["adminform"].form.fields

    # when: not billed yet, it is unticked
    response = admin_client.post(url, charge_form_data(charge, taxable=""))

    # then
    assert response.status_code == 302
    charge.refresh_from_db()
    assert charge.taxable is False

    # when billed
    Charge.objects.filter(pk=charge.pk).update(charged_through_date=datetime.date(2026, 2, 1))

    # then taxable is read-only, as the other billed terms
    page = admin_client.get(url)
    assert "taxable" not in page.context["adminform"].form.fields
    response = admin_client.post(url, charge_form_data(charge, taxable="on"))
    charge.refresh_from_db()
    assert charge.taxable is False


@pytest.mark.django_db
def test_the_charge_form_refuses_a_billed_charges_taxable():
    # given: the form drawn before a run billed the charge (the
    # subscription's inline uses the same form, every field editable)
    charge = ChargeFactory(number="C00000003", start_date=JAN)
    form_class = modelform_factory(Charge, form=ChargeForm, fields=["name", "taxable"])
    Charge.objects.filter(pk=charge.pk).update(charged_through_date=datetime.date(2026, 2, 1))

    # when
    form = form_class({"name": charge.name}, instance=charge)

    # then
    assert not form.is_valid()
    assert form.errors["taxable"] == [
        "C00000003 is billed: its terms no longer change by hand. Make a subscription change "
        "(manage.py amend: change_price, remove_charge, cancel_subscription)."
    ]


# --- the pages -------------------------------------------------------------------


@pytest.mark.django_db
def test_the_account_page_shows_its_tax_codes_in_order(client, viewer, rates):
    # given
    account = AccountFactory(number="A1")
    for position, code in enumerate(["US-CA", "US-SF"], start=1):
        AccountTaxCode.objects.create(
            account=account, tax_rate=TaxRate.objects.get(code=code), position=position
        )
    tax_rate_set("US-CA", "7.25", name="California")
    client.force_login(viewer)

    # when
    page = client.get(reverse("customers:account_detail", args=["A1"])).content.decode()

    # then
    assert 'data-code="US-CA">US-CA California 7.25 %</span>' in page
    assert 'data-code="US-SF">US-SF US-SF 0.8625 %</span>' in page
    assert page.index('data-code="US-CA"') < page.index('data-code="US-SF"')


@pytest.mark.django_db
def test_an_account_without_tax_codes_says_it_is_not_taxed(client, viewer):
    AccountFactory(number="A1")
    client.force_login(viewer)

    page = client.get(reverse("customers:account_detail", args=["A1"])).content.decode()

    assert "None: not taxed" in page
    assert 'data-testid="account-tax-code"' not in page


@pytest.mark.django_db
def test_the_subscription_page_shows_each_charges_taxable(client, viewer):
    # given a taxed plan and an untaxed fee
    plan = ChargeFactory(start_date=JAN)
    OneTimeChargeFactory(subscription=plan.subscription, start_date=JAN, taxable=False)
    client.force_login(viewer)

    # when
    page = client.get(
        reverse("subscriptions:detail", args=[plan.subscription.number])
    ).content.decode()

    # then
    assert page.count('data-testid="charge-taxable"') == 2
    assert 'data-taxable="true">Taxable</td>' in page
    assert 'data-taxable="false"><span class="muted">Not taxed</span></td>' in page
