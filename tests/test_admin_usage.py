"""The admin of usage (issue 13): pricings added whole and never changed,
usage charges with generated numbers, usage records read-only once billed."""

import datetime
from decimal import Decimal

import pytest
from django.urls import reverse

from customers.models import Charge, Pricing, UsageRecord
from invoices.models import Document, DocumentItem
from tests.factories import SubscriptionFactory, UsageChargeFactory, UsageRecordFactory

pytestmark = pytest.mark.django_db

JAN = datetime.date(2026, 1, 1)
JAN_END = datetime.date(2026, 1, 31)


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


def bill_january(charge, *, number="INV00000001"):
    document = Document.objects.create(
        document_type="invoice",
        number=number,
        account=charge.subscription.account,
        currency="USD",
        amount=Decimal("0.00"),
        balance=Decimal("0.00"),
        invoice_date=JAN_END,
        due_date=JAN_END,
    )
    DocumentItem.objects.create(
        document=document,
        charge=charge,
        subscription=charge.subscription,
        charge_name=charge.name,
        service_start=JAN,
        service_end=JAN_END,
        amount=Decimal("0.00"),
    )


def record_url(record, action="change"):
    return reverse(f"admin:customers_usagerecord_{action}", args=[record.pk])


def test_a_billed_record_is_read_only_and_says_where_it_is_billed(admin_client):
    record = UsageRecordFactory(date=datetime.date(2026, 1, 10))
    bill_january(record.charge)

    page = admin_client.get(record_url(record))
    posted = admin_client.post(record_url(record), {"date": "2026-02-10", "quantity": "9"})
    deleted = admin_client.post(record_url(record, "delete"), {"post": "yes"})

    assert page.status_code == 200
    assert b"Billed on INV00000001: read-only." in page.content
    assert b'name="_save"' not in page.content
    assert posted.status_code == 403
    assert deleted.status_code == 403
    record.refresh_from_db()
    assert (record.date, record.quantity) == (datetime.date(2026, 1, 10), 1)


def test_an_unbilled_record_may_be_corrected(admin_client):
    record = UsageRecordFactory(date=datetime.date(2026, 2, 10))
    bill_january(record.charge)

    response = admin_client.post(record_url(record), {"date": "2026-02-11", "quantity": "2.5"})

    assert response.status_code == 302
    record.refresh_from_db()
    assert (record.date, record.quantity) == (datetime.date(2026, 2, 11), Decimal("2.5"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"date": "2026-01-31", "quantity": "1"}, b"already billed on INV00000001"),
        ({"date": "2025-12-31", "quantity": "1"}, b"is outside the service of charge"),
        ({"date": "2026-02-11", "quantity": "-1"}, b"The quantity must be 0 or more."),
    ],
    ids=["into-a-billed-period", "before-the-charge", "negative"],
)
def test_a_correction_the_import_would_refuse_is_refused(admin_client, data, message):
    record = UsageRecordFactory(date=datetime.date(2026, 2, 10))
    bill_january(record.charge)

    response = admin_client.post(record_url(record), data)

    assert response.status_code == 200
    assert message in response.content
    record.refresh_from_db()
    assert record.date == datetime.date(2026, 2, 10)


def test_an_unbilled_record_may_be_deleted_one_at_a_time(admin_client):
    record = UsageRecordFactory()

    changelist = admin_client.get(reverse("admin:customers_usagerecord_changelist"))
    response = admin_client.post(record_url(record, "delete"), {"post": "yes"})

    assert b"delete_selected" not in changelist.content
    assert response.status_code == 302
    assert not UsageRecord.objects.exists()


def test_usage_records_are_not_added_by_hand(admin_client):
    assert admin_client.get(reverse("admin:customers_usagerecord_add")).status_code == 403


def tier_forms(*tiers):
    data = {
        "tiers-TOTAL_FORMS": str(len(tiers)),
        "tiers-INITIAL_FORMS": "0",
        "tiers-MIN_NUM_FORMS": "0",
        "tiers-MAX_NUM_FORMS": "1000",
    }
    for index, (up_to, unit_price, flat_fee) in enumerate(tiers):
        data[f"tiers-{index}-up_to"] = up_to
        data[f"tiers-{index}-unit_price"] = unit_price
        data[f"tiers-{index}-flat_fee"] = flat_fee
    return data


def test_a_pricing_is_added_with_its_tiers_and_then_never_changed(admin_client):
    response = admin_client.post(
        reverse("admin:customers_pricing_add"),
        {
            "model": "graduated",
            **tier_forms(("1000", "0", "0"), ("10000", "0.002", "5.00"), ("", "0.001", "0")),
        },
    )

    assert response.status_code == 302
    pricing = Pricing.objects.get()
    assert list(pricing.tiers.values_list("from_quantity", "up_to")) == [
        (0, 1000),
        (1000, 10000),
        (10000, None),
    ]
    page = admin_client.get(reverse("admin:customers_pricing_change", args=[pricing.pk]))
    assert b'name="_save"' not in page.content


def test_tiers_that_do_not_make_a_whole_are_refused_with_nothing_written(admin_client):
    response = admin_client.post(
        reverse("admin:customers_pricing_add"),
        {"model": "volume", **tier_forms(("10000", "0", "0"), ("1000", "0.002", "0"))},
    )

    assert response.status_code == 200
    assert b"must be above the previous tier" in response.content
    assert b"the last tier is unbounded" in response.content
    assert not Pricing.objects.exists()


def charge_data(subscription, **fields):
    return {
        "number": "",
        "subscription": subscription.pk,
        "name": "API calls",
        "charge_type": "usage",
        "amount": "",
        "quantity": "",
        "unit": "calls",
        "currency": "USD",
        "period": "month",
        "start_date": "2026-01-01",
        "end_date": "",
        **fields,
    }


def test_a_usage_charge_is_added_with_a_generated_number(admin_client):
    pricing = UsageChargeFactory().pricing
    subscription = SubscriptionFactory()

    response = admin_client.post(
        reverse("admin:customers_charge_add"), charge_data(subscription, pricing=pricing.pk)
    )

    assert response.status_code == 302
    charge = Charge.objects.get(subscription=subscription)
    assert charge.number.startswith("C") and charge.pricing == pricing


def test_a_usage_charge_with_an_amount_and_no_pricing_is_refused_on_each_field(admin_client):
    subscription = SubscriptionFactory()

    response = admin_client.post(
        reverse("admin:customers_charge_add"),
        charge_data(subscription, amount="10.00", quantity="1", unit=""),
    )

    assert response.status_code == 200
    for message in [
        b"A usage charge has no amount",
        b"A usage charge has no quantity",
        b"needs its unit of measure",
        b"A usage charge needs a pricing.",
    ]:
        assert message in response.content
    assert not Charge.objects.filter(subscription=subscription).exists()
