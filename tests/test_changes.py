"""Subscription changes (BILLING_RULES.md, "Subscription changes and
adjustments"): each row of the rules' table accepted, and refused with its
message; changes applied in order, all or nothing; before and after recorded
with who made them."""

import datetime
from decimal import Decimal

import pytest
from django.apps import apps
from django.forms import modelform_factory
from django.urls import reverse

from customers.admin import BCD_FROZEN, AccountForm
from customers.changes import ChangesRefused, change_requests, changes_apply
from customers.importer.problems import Problems
from customers.models import (
    BILLED_TERMS,
    Account,
    Charge,
    ChargePrice,
    Status,
    Subscription,
    SubscriptionChange,
)
from customers.selectors import pricings
from invoices.admin_customers import ChargeForm
from tests.factories import (
    AccountFactory,
    ChargeFactory,
    OneTimeChargeFactory,
    SubscriptionFactory,
    UsageChargeFactory,
    UsageRecordFactory,
)

pytestmark = pytest.mark.django_db

JAN = datetime.date(2026, 1, 1)


def day(text):
    return datetime.date.fromisoformat(text)


def apply(*changes, user=None):
    """Apply ``changes`` (the file's JSON objects) and return the change rows."""
    problems = Problems()
    requests = change_requests({"changes": list(changes)}, problems)
    assert problems.first == []
    return changes_apply(requests=requests, user=user)


def refusal(*changes):
    """The lines ``changes`` are refused with."""
    problems = Problems()
    requests = change_requests({"changes": list(changes)}, problems)
    if problems.count:
        return problems.first
    with pytest.raises(ChangesRefused) as refused:
        changes_apply(requests=requests)
    return refused.value.lines()


def every_customers_row():
    """Every row of every customers table, as values, in id order."""
    return {
        model._meta.label: list(model.objects.order_by("pk").values())
        for model in apps.get_app_config("customers").get_models()
    }


@pytest.fixture
def subscription():
    return SubscriptionFactory(number="S00000001", start_date=JAN)


@pytest.fixture
def recurring(subscription):
    return ChargeFactory(number="C00000003", subscription=subscription, start_date=JAN)


@pytest.fixture
def usage(subscription):
    return UsageChargeFactory(number="C00000004", subscription=subscription, start_date=JAN)


@pytest.fixture
def one_time(subscription):
    return OneTimeChargeFactory(
        number="C00000005", subscription=subscription, start_date=day("2026-03-01")
    )


def price(number, effective, **terms):
    return {"type": "change_price", "charge": number, "effective_date": effective, **terms}


def remove(number, effective):
    return {"type": "remove_charge", "charge": number, "effective_date": effective}


def cancel(number, effective):
    return {"type": "cancel_subscription", "subscription": number, "effective_date": effective}


def add(subscription, **charge):
    return {"type": "add_charge", "subscription": subscription, "charge": charge}


# --- add charge --------------------------------------------------------------------


def test_add_charge_adds_a_charge_as_the_import_takes_it(subscription, superuser):
    # when
    (change,) = apply(
        add(
            "S00000001",
            number="C00000009",
            name="Support",
            type="recurring",
            amount="50.00",
            quantity="2",
            period="month",
            start_date="2026-03-01",
        ),
        user=superuser,
    )

    # then
    charge = Charge.objects.get(number="C00000009")
    assert charge.subscription == subscription
    assert (charge.amount, charge.quantity) == (Decimal("50.00"), Decimal("2"))
    assert charge.currency == subscription.account.currency
    assert (charge.start_date, charge.end_date, charge.period) == (day("2026-03-01"), None, "month")
    assert change.change_type == "add_charge"
    assert change.charge == charge
    assert change.effective_date == day("2026-03-01")
    assert change.made_by == superuser
    assert change.before == {}
    assert change.after["amount"] == "50.00"
    assert change.after["quantity"] == "2"
    assert change.after["number"] == "C00000009"


def test_add_charge_generates_the_number_when_absent(subscription):
    (change,) = apply(
        add("S00000001", name="Setup", type="one_time", amount="10.00", start_date="2026-03-01")
    )

    assert change.charge.number.startswith("C")
    assert change.after["number"] == change.charge.number


def test_add_charge_takes_a_usage_charge_with_its_pricing(subscription):
    (change,) = apply(
        add(
            "S00000001",
            number="C00000009",
            name="Calls",
            type="usage",
            period="month",
            unit="calls",
            start_date="2026-03-01",
            pricing={
                "model": "graduated",
                "tiers": [
                    {"up_to": "1000", "unit_price": "0"},
                    {"up_to": None, "unit_price": "0.001", "flat_fee": "5.00"},
                ],
            },
        )
    )

    charge = change.charge
    model, tiers = pricings([charge.pricing_id])[charge.pricing_id]
    assert model == "graduated"
    assert [(t.up_to, t.unit_price, t.flat_fee) for t in tiers] == [
        (Decimal("1000"), Decimal("0"), Decimal("0")),
        (None, Decimal("0.001"), Decimal("5.00")),
    ]
    assert change.after["pricing"] == {
        "model": "graduated",
        "tiers": [
            {"up_to": "1000", "unit_price": "0", "flat_fee": "0.00"},
            {"up_to": None, "unit_price": "0.001", "flat_fee": "5.00"},
        ],
    }


def test_add_charge_reports_the_imports_problems_at_their_paths(subscription):
    lines = refusal(
        add("S00000001", name="Setup", type="one_time", amount="10.001", start_date="2026-03-01")
    )

    assert len(lines) == 1
    assert lines[0].startswith("changes[0].charge.amount: must be a decimal string")


def test_add_charge_refuses_a_number_in_use_ignoring_case(recurring):
    lines = refusal(
        add(
            "S00000001",
            number="c00000003",
            name="Again",
            type="recurring",
            amount="1.00",
            period="month",
            start_date="2026-03-01",
        )
    )

    assert lines == [
        "changes[0].charge.number: charge number c00000003 differs only in case from charge "
        "C00000003, which already exists (numbers must differ in more than case)"
    ]


def test_add_charge_refuses_a_number_an_earlier_change_of_the_file_added(subscription):
    support = {
        "number": "C00000009",
        "name": "Support",
        "type": "one_time",
        "amount": "1.00",
        "start_date": "2026-03-01",
    }

    lines = refusal(add("S00000001", **support), add("S00000001", **support))

    assert lines == [
        "changes[1].charge.number: charge C00000009 already exists (importing does not update)"
    ]
    assert not Charge.objects.exists()


@pytest.mark.parametrize("change_type", ["add", "cancel"])
def test_a_change_to_a_canceled_subscription_is_refused(change_type):
    SubscriptionFactory(number="S00000002", status=Status.CANCELED)
    change = (
        add("S00000002", name="X", type="one_time", amount="1.00", start_date="2026-03-01")
        if change_type == "add"
        else cancel("S00000002", "2026-03-01")
    )

    assert refusal(change) == ["changes[0].subscription: S00000002: the subscription is Canceled"]


def test_a_change_to_a_subscription_of_a_canceled_account_is_refused():
    account = AccountFactory(number="A00000007", status=Status.CANCELED)
    SubscriptionFactory(number="S00000002", account=account)

    assert refusal(cancel("S00000002", "2026-03-01")) == [
        "changes[0].subscription: S00000002: the account A00000007 is Canceled"
    ]


def test_a_change_to_a_charge_of_a_canceled_subscription_is_refused(recurring):
    Subscription.objects.filter(pk=recurring.subscription_id).update(status=Status.CANCELED)

    assert refusal(price("C00000003", "2026-03-01", amount="1.00")) == [
        "changes[0].charge: C00000003: its subscription S00000001 is Canceled"
    ]


def test_unknown_numbers_are_refused_exactly_case_included(recurring):
    assert refusal(remove("c00000003", "2026-03-01")) == [
        "changes[0].charge: no charge has the number c00000003"
    ]
    assert refusal(cancel("S404", "2026-03-01")) == [
        "changes[0].subscription: no subscription has the number S404"
    ]


# --- change price --------------------------------------------------------------------


def test_change_price_writes_a_segment_with_the_full_terms_in_effect(recurring, superuser):
    # when: the amount, then the quantity (INTERFACES.md's example)
    first, second = apply(
        price("C00000003", "2026-03-11", amount="160.00"),
        price("C00000003", "2026-04-01", quantity="3"),
        user=superuser,
    )

    # then
    segments = list(ChargePrice.objects.filter(charge=recurring).order_by("effective_date"))
    assert [(s.effective_date, s.amount, s.quantity, s.pricing_id) for s in segments] == [
        (day("2026-03-11"), Decimal("160.00"), Decimal("1"), None),
        (day("2026-04-01"), Decimal("160.00"), Decimal("3"), None),
    ]
    assert [s.change for s in segments] == [first, second]
    assert first.before == {"amount": "100.00", "quantity": "1"}
    assert first.after == {"amount": "160.00", "quantity": "1"}
    assert second.before == {"amount": "160.00", "quantity": "1"}
    assert second.after == {"amount": "160.00", "quantity": "3"}
    # the charge's own terms (those before its first segment) never change
    recurring.refresh_from_db()
    assert recurring.amount == Decimal("100.00")


def test_change_price_of_a_usage_charge_writes_a_new_pricing(usage):
    (change,) = apply(
        price("C00000004", "2026-04-01", pricing={"model": "per_unit", "unit_price": "0.002"})
    )

    segment = change.price
    assert segment.pricing_id not in (None, usage.pricing_id)
    assert pricings([segment.pricing_id])[segment.pricing_id][0] == "per_unit"
    assert change.before["pricing"] == {"model": "per_unit", "unit_price": "0.01"}
    assert change.after["pricing"] == {"model": "per_unit", "unit_price": "0.002"}
    assert (segment.amount, segment.quantity) == (None, None)


def test_change_price_refuses_a_one_time_charge(one_time):
    assert refusal(price("C00000005", "2026-04-01", amount="1.00")) == [
        "changes[0].charge: C00000005: only a recurring or usage charge's price can change, "
        "not a one-time charge's"
    ]


def test_change_price_must_be_after_the_charges_start(recurring):
    assert refusal(price("C00000003", "2026-01-01", amount="1.00")) == [
        "changes[0].effective_date: C00000003: a price change effective 2026-01-01 is not after "
        "the charge's start 2026-01-01"
    ]


def test_change_price_must_not_be_before_an_earlier_change(recurring):
    lines = refusal(
        price("C00000003", "2026-04-01", amount="150.00"),
        price("C00000003", "2026-03-01", amount="160.00"),
    )

    assert lines == [
        "changes[1].effective_date: C00000003: a change effective 2026-03-01 is before the "
        "change of 2026-04-01"
    ]


def test_change_price_must_be_before_the_charges_end(recurring):
    Charge.objects.filter(pk=recurring.pk).update(end_date=day("2026-06-01"))

    assert refusal(price("C00000003", "2026-06-01", amount="1.00")) == [
        "changes[0].effective_date: C00000003: a price change effective 2026-06-01 is not "
        "before the charge's end 2026-06-01"
    ]
    assert apply(price("C00000003", "2026-05-31", amount="1.00"))


def test_change_price_refuses_the_terms_already_in_effect(recurring):
    lines = refusal(
        price("C00000003", "2026-03-11", amount="160.00"),
        price("C00000003", "2026-04-01", amount="160.00", quantity="1"),
    )

    assert lines == ["changes[1]: C00000003: the new terms are those in effect on 2026-04-01"]


def test_change_price_refuses_the_same_pricing_as_in_effect(usage):
    assert refusal(
        price("C00000004", "2026-04-01", pricing={"model": "per_unit", "unit_price": "0.010"})
    ) == ["changes[0]: C00000004: the new terms are those in effect on 2026-04-01"]


def test_change_price_terms_must_match_the_charges_type(recurring, usage):
    assert refusal(price("C00000004", "2026-04-01", amount="1.00")) == [
        "changes[0].amount: C00000004: a usage charge's new terms are its pricing, "
        "not an amount or quantity"
    ]
    assert refusal(
        price("C00000003", "2026-04-01", pricing={"model": "per_unit", "unit_price": "1"})
    ) == [
        "changes[0].pricing: C00000003: a recurring charge's new terms are its amount and/or "
        "quantity, not a pricing"
    ]


def test_two_price_changes_of_one_charge_and_day_are_refused(recurring):
    lines = refusal(
        price("C00000003", "2026-04-01", amount="160.00"),
        price("C00000003", "2026-04-01", quantity="2"),
    )

    assert lines == [
        "changes[1].effective_date: C00000003: its price already changes on 2026-04-01; give "
        "the new amount and quantity in one change"
    ]


def test_change_price_keeps_amount_times_quantity_below_the_limit(recurring):
    lines = refusal(price("C00000003", "2026-04-01", amount="9999999999999.00", quantity="2"))

    assert lines == [
        "changes[0].amount: C00000003: amount × quantity (9999999999999.00 × 2) must be below "
        "10^13 in absolute value"
    ]


# --- remove charge -------------------------------------------------------------------


def test_remove_charge_sets_the_end_date(recurring):
    (change,) = apply(remove("C00000003", "2026-03-11"))

    recurring.refresh_from_db()
    assert recurring.end_date == day("2026-03-11")
    assert (change.before, change.after) == ({"end_date": None}, {"end_date": "2026-03-11"})


def test_remove_charge_on_its_start_leaves_no_service(recurring):
    apply(remove("C00000003", "2026-01-01"))

    recurring.refresh_from_db()
    assert recurring.end_date == recurring.start_date


def test_remove_charge_must_not_be_before_its_start(recurring):
    assert refusal(remove("C00000003", "2025-12-31")) == [
        "changes[0].effective_date: C00000003: a removal effective 2025-12-31 is before the "
        "charge's start 2026-01-01"
    ]


def test_remove_charge_must_not_be_before_an_earlier_change(recurring):
    assert refusal(
        price("C00000003", "2026-04-01", amount="160.00"), remove("C00000003", "2026-03-31")
    ) == [
        "changes[1].effective_date: C00000003: a change effective 2026-03-31 is before the "
        "change of 2026-04-01"
    ]
    # on the day of the change: accepted
    assert apply(
        price("C00000003", "2026-04-01", amount="160.00"), remove("C00000003", "2026-04-01")
    )


def test_remove_charge_must_be_before_its_current_end(recurring):
    assert refusal(remove("C00000003", "2026-03-11"), remove("C00000003", "2026-03-11")) == [
        "changes[1].effective_date: C00000003: a removal effective 2026-03-11 is not before the "
        "charge's end 2026-03-11"
    ]


def test_remove_usage_charge_refuses_usage_on_or_after_the_date(usage):
    UsageRecordFactory(charge=usage, date=day("2026-03-10"))
    UsageRecordFactory(charge=usage, date=day("2026-03-15"))

    assert refusal(remove("C00000004", "2026-03-11")) == [
        "changes[0].effective_date: C00000004: usage recorded on 2026-03-15, on or after the "
        "removal date 2026-03-11"
    ]
    assert refusal(remove("C00000004", "2026-03-15"))
    apply(remove("C00000004", "2026-03-16"))
    usage.refresh_from_db()
    assert usage.end_date == day("2026-03-16")


@pytest.mark.parametrize("effective", ["2026-01-01", "2026-03-01", "2026-12-31"])
def test_remove_one_time_charge_while_unbilled_whatever_the_date(one_time, effective):
    (change,) = apply(remove("C00000005", effective))

    one_time.refresh_from_db()
    # end = start: no service, it never bills
    assert one_time.end_date == one_time.start_date
    assert change.effective_date == day(effective)
    assert change.after == {"end_date": "2026-03-01"}


def test_remove_one_time_charge_is_refused_once_billed(one_time):
    Charge.objects.filter(pk=one_time.pk).update(charged_through_date=day("2026-03-02"))

    assert refusal(remove("C00000005", "2026-03-11")) == [
        "changes[0].charge: C00000005: a one-time charge can be removed only while unbilled"
    ]


def test_remove_one_time_charge_twice_is_refused(one_time):
    assert refusal(remove("C00000005", "2026-03-11"), remove("C00000005", "2026-03-11")) == [
        "changes[1].charge: C00000005: the one-time charge is already removed"
    ]


# --- cancel subscription ---------------------------------------------------------------


def test_cancel_subscription_removes_what_the_rules_say(subscription, recurring, usage, superuser):
    # given
    later = ChargeFactory(
        number="C00000006", subscription=subscription, start_date=day("2026-05-01")
    )
    ended = ChargeFactory(
        number="C00000007",
        subscription=subscription,
        start_date=JAN,
        end_date=day("2026-02-01"),
    )
    ends_later = ChargeFactory(
        number="C00000008",
        subscription=subscription,
        start_date=JAN,
        end_date=day("2026-09-01"),
    )
    unbilled_after = OneTimeChargeFactory(
        number="C00000010", subscription=subscription, start_date=day("2026-03-11")
    )
    unbilled_before = OneTimeChargeFactory(
        number="C00000011", subscription=subscription, start_date=day("2026-03-10")
    )
    billed_after = OneTimeChargeFactory(
        number="C00000012",
        subscription=subscription,
        start_date=day("2026-04-01"),
        charged_through_date=day("2026-04-02"),
    )

    # when
    (change,) = apply(cancel("S00000001", "2026-03-11"), user=superuser)

    # then
    end_dates = dict(Charge.objects.values_list("number", "end_date"))
    assert end_dates == {
        recurring.number: day("2026-03-11"),
        usage.number: day("2026-03-11"),
        later.number: day("2026-05-01"),  # at its start: it never bills
        ended.number: day("2026-02-01"),
        ends_later.number: day("2026-03-11"),
        unbilled_after.number: day("2026-03-11"),  # end = start
        unbilled_before.number: None,  # still owed
        billed_after.number: None,  # stays as billed
    }
    subscription.refresh_from_db()
    assert (subscription.status, subscription.cancel_date) == ("Canceled", day("2026-03-11"))
    assert change.charge is None
    assert change.made_by == superuser
    assert change.before == {
        "status": "Active",
        "cancel_date": None,
        "end_dates": {
            "C00000003": None,
            "C00000004": None,
            "C00000006": None,
            "C00000008": "2026-09-01",
            "C00000010": None,
        },
    }
    assert change.after == {
        "status": "Canceled",
        "cancel_date": "2026-03-11",
        "end_dates": {
            "C00000003": "2026-03-11",
            "C00000004": "2026-03-11",
            "C00000006": "2026-05-01",
            "C00000008": "2026-03-11",
            "C00000010": "2026-03-11",
        },
    }


def test_cancel_subscription_is_refused_when_a_removal_would_be(usage):
    UsageRecordFactory(charge=usage, date=day("2026-03-15"))

    assert refusal(cancel("S00000001", "2026-03-11")) == [
        "changes[0].effective_date: S00000001: C00000004: usage recorded on 2026-03-15, on or "
        "after the removal date 2026-03-11"
    ]


def test_cancel_subscription_is_refused_before_a_charges_price_change(recurring):
    assert refusal(
        price("C00000003", "2026-04-01", amount="160.00"), cancel("S00000001", "2026-03-11")
    ) == [
        "changes[1].effective_date: S00000001: C00000003: a change effective 2026-03-11 is "
        "before the change of 2026-04-01"
    ]


def test_a_future_charge_already_removed_at_its_start_does_not_stop_a_cancel(subscription):
    later = ChargeFactory(
        number="C00000006", subscription=subscription, start_date=day("2026-05-01")
    )
    apply(remove("C00000006", "2026-05-01"))

    apply(cancel("S00000001", "2026-03-11"))

    later.refresh_from_db()
    assert later.end_date == later.start_date


def test_nothing_changes_a_canceled_subscription_afterwards(recurring):
    assert refusal(
        cancel("S00000001", "2026-03-11"), price("C00000003", "2026-03-01", amount="1")
    ) == ["changes[1].charge: C00000003: its subscription S00000001 is Canceled"]


# --- order, all or nothing, who --------------------------------------------------------


def test_a_list_applies_in_order_each_against_what_the_earlier_left(subscription):
    changes = apply(
        add(
            "S00000001",
            number="C00000009",
            name="Support",
            type="recurring",
            amount="50.00",
            period="month",
            start_date="2026-01-01",
        ),
        price("C00000009", "2026-02-01", amount="60.00"),
        remove("C00000009", "2026-06-01"),
    )

    assert [c.change_type for c in changes] == ["add_charge", "change_price", "remove_charge"]
    charge = Charge.objects.get(number="C00000009")
    assert charge.end_date == day("2026-06-01")
    assert charge.prices.get().amount == Decimal("60.00")


def test_a_refused_change_applies_none_of_the_list(recurring, usage, one_time):
    # given
    before = every_customers_row()

    # when: four good changes, then one the rules refuse
    lines = refusal(
        add(
            "S00000001",
            number="C00000009",
            name="Support",
            type="usage",
            period="month",
            unit="GB",
            start_date="2026-02-01",
            pricing={"model": "per_unit", "unit_price": "0.5"},
        ),
        price("C00000003", "2026-03-11", amount="160.00"),
        price("C00000004", "2026-04-01", pricing={"model": "per_unit", "unit_price": "0.002"}),
        remove("C00000005", "2026-03-11"),
        cancel("S00000001", "2026-03-01"),
    )

    # then
    assert lines == [
        "changes[4].effective_date: S00000001: C00000003: a change effective 2026-03-01 is "
        "before the change of 2026-03-11"
    ]
    assert every_customers_row() == before
    assert not SubscriptionChange.objects.exists()


def test_without_a_user_the_changes_record_no_one(recurring):
    (change,) = apply(remove("C00000003", "2026-03-11"))

    assert change.made_by is None


def test_effective_dates_are_in_the_accepted_range(recurring):
    assert refusal(remove("C00000003", "2100-01-01")) == [
        "changes[0].effective_date: must be between 2000-01-01 and 2099-12-31, not 2100-01-01"
    ]


# --- the freeze of billed terms, in the admin -----------------------------------------


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


def bill(charge, through="2026-02-01"):
    Charge.objects.filter(pk=charge.pk).update(charged_through_date=day(through))
    charge.refresh_from_db()


def charge_url(charge):
    return reverse("admin:customers_charge_change", args=[charge.pk])


def charge_form_data(charge, **changes):
    data = {
        "number": charge.number,
        "subscription": charge.subscription_id,
        "name": charge.name,
        "charge_type": charge.charge_type,
        "amount": str(charge.amount),
        "quantity": str(charge.quantity),
        "unit": "",
        "pricing": "",
        "currency": charge.currency,
        "period": charge.period,
        "start_date": charge.start_date.isoformat(),
        "end_date": "",
        "taxable": "on" if charge.taxable else "",
    }
    data.update(changes)
    return data


def test_a_billed_charges_terms_are_read_only_on_its_page(admin_client, recurring):
    bill(recurring)

    response = admin_client.get(charge_url(recurring))

    form = response.context["adminform"].form
    assert response.status_code == 200
    assert set(BILLED_TERMS).isdisjoint(form.fields)
    assert "name" in form.fields
    assert "C00000003 is billed: its terms no longer change by hand" in response.content.decode()


def test_a_charge_not_billed_yet_is_edited_by_hand(admin_client, recurring):
    response = admin_client.post(
        charge_url(recurring), charge_form_data(recurring, amount="120.00")
    )

    assert response.status_code == 302
    recurring.refresh_from_db()
    assert recurring.amount == Decimal("120.00")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", "120.00"),
        ("quantity", "2"),
        ("start_date", "2026-01-02"),
        ("end_date", "2026-06-01"),
        ("period", "quarter"),
        ("currency", "EUR"),
    ],
)
def test_the_charge_form_refuses_a_billed_charges_terms(recurring, field, value):
    # given: the form drawn before a run billed the charge (the subscription's
    # inline uses the same form, with every field editable)
    form_class = modelform_factory(
        Charge, form=ChargeForm, fields=list(charge_form_data(recurring))
    )
    bill(recurring)

    # when
    form = form_class(charge_form_data(recurring, **{field: value}), instance=recurring)

    # then
    assert not form.is_valid()
    assert form.errors[field] == [
        "C00000003 is billed: its terms no longer change by hand. Make a subscription change "
        "(manage.py amend: change_price, remove_charge, cancel_subscription)."
    ]


def test_the_charge_form_still_takes_a_billed_charges_name(recurring):
    form_class = modelform_factory(
        Charge, form=ChargeForm, fields=list(charge_form_data(recurring))
    )
    bill(recurring)

    form = form_class(charge_form_data(recurring, name="Pro plan"), instance=recurring)

    assert form.is_valid(), form.errors


def test_a_billed_accounts_bill_cycle_day_is_frozen(admin_client, recurring):
    account = recurring.subscription.account
    url = reverse("admin:customers_account_change", args=[account.pk])
    assert "bill_cycle_day" in admin_client.get(url).context["adminform"].form.fields
    form_class = modelform_factory(
        Account, form=AccountForm, fields=["number", "name", "currency", "bill_cycle_day"]
    )
    data = {"number": account.number, "name": account.name, "currency": "USD", "bill_cycle_day": 15}

    # when: billed
    bill(recurring)

    # then
    assert "bill_cycle_day" not in admin_client.get(url).context["adminform"].form.fields
    form = form_class(data, instance=account)
    assert not form.is_valid()
    assert form.errors["bill_cycle_day"] == [BCD_FROZEN]


def test_the_admin_shows_a_charges_changes_and_price_segments(admin_client, recurring):
    apply(price("C00000003", "2026-03-11", amount="160.00"))

    charge_page = admin_client.get(charge_url(recurring)).content.decode()
    subscription_page = admin_client.get(
        reverse("admin:customers_subscription_change", args=[recurring.subscription_id])
    ).content.decode()

    assert "Price segments" in charge_page
    assert "160.00" in charge_page
    assert "Change price" in charge_page
    assert "Change price" in subscription_page
