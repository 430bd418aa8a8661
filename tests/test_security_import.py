"""Hostile import files, beyond the fuzz test of test_import_accounts.py:
deep nesting, huge numbers and numbers that would break the pages' URLs are a
clean refusal that imports nothing, never a traceback."""

import pytest

from tests.test_import_accounts import account, counts, import_document, import_text

pytestmark = pytest.mark.django_db


def assert_refused_cleanly(code, out, err, before):
    assert code == 1
    assert out == ""
    assert err and all(line.strip() for line in err)
    assert not any("Traceback" in line for line in err)
    assert counts() == before


@pytest.mark.parametrize("number", ["A/1", "../A1", "..", ".", "A\\1", "A\x001", "A\n1", "A\x7f"])
def test_an_account_number_that_cannot_be_a_url_part_is_refused(tmp_path, number):
    before = counts()

    code, out, err = import_document(tmp_path, {"accounts": [account(number=number)]})

    assert_refused_cleanly(code, out, err, before)
    assert err[0].startswith("accounts[0].number:")


def test_a_subscription_number_with_a_slash_is_refused(tmp_path):
    sub = {"number": "S/1", "start_date": "2026-01-01"}
    before = counts()

    code, out, err = import_document(tmp_path, {"accounts": [account(subscriptions=[sub])]})

    assert_refused_cleanly(code, out, err, before)
    assert err[0].startswith("accounts[0].subscriptions[0].number:")


def test_markup_and_unicode_in_a_number_are_kept_as_written(tmp_path):
    number = '"><img>Ω&amp;<b>'

    code, _, err = import_document(tmp_path, {"accounts": [account(number=number)]})

    assert (code, err) == (0, [])


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_json_is_refused_cleanly(tmp_path, depth):
    before = counts()

    code, out, err = import_text(tmp_path, "[" * depth + "]" * depth)

    assert_refused_cleanly(code, out, err, before)


@pytest.mark.parametrize(
    "text",
    [
        '{"accounts": [{"name": "x", "currency": "USD", "bill_cycle_day": %s}]}' % ("9" * 5000),
        '{"accounts": [{"name": "x", "currency": "USD", "bill_cycle_day": 1e400}]}',
        '{"accounts": [{"name": "x", "currency": "USD", "bill_cycle_day": -1e-400}]}',
        '{"accounts": [{"name": "x", "currency": "USD", "bill_cycle_day": 1, "batch": %s}]}'
        % ("1" + "0" * 400),
    ],
    ids=["5000-digit-integer", "huge-float", "tiny-float", "400-digit-batch"],
)
def test_huge_and_tiny_numbers_are_refused_cleanly(tmp_path, text):
    before = counts()

    code, out, err = import_text(tmp_path, text)

    assert_refused_cleanly(code, out, err, before)


@pytest.mark.parametrize("amount", ["1e10", "1E2", "NaN", "Infinity", "-0.001", "0x10", "1_000"])
def test_amounts_in_other_notations_are_refused(tmp_path, amount):
    charge = {
        "name": "Plan",
        "type": "one_time",
        "amount": amount,
        "start_date": "2026-01-01",
    }
    sub = {"start_date": "2026-01-01", "charges": [charge]}
    before = counts()

    code, out, err = import_document(tmp_path, {"accounts": [account(subscriptions=[sub])]})

    assert_refused_cleanly(code, out, err, before)
    assert err[0].startswith("accounts[0].subscriptions[0].charges[0].amount:")


def test_a_huge_name_is_refused_with_its_path(tmp_path):
    before = counts()

    code, out, err = import_document(tmp_path, {"accounts": [account(name="x" * 100_000)]})

    assert_refused_cleanly(code, out, err, before)
    assert err[0].startswith("accounts[0].name:")


def test_the_admin_refuses_a_number_with_a_slash_too(client, superuser):
    client.force_login(superuser)
    form = {
        "number": "A/1",
        "name": "x",
        "currency": "USD",
        "bill_cycle_day": "1",
        "batch": "1",
        "payment_term_days": "30",
        "status": "Active",
        "subscriptions-TOTAL_FORMS": "0",
        "subscriptions-INITIAL_FORMS": "0",
    }
    before = counts()

    response = client.post("/admin/customers/account/add/", form)

    assert response.status_code == 200
    assert "must not contain a slash" in response.content.decode()
    assert counts() == before
