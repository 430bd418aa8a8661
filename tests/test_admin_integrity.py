"""What a Posted document shows cannot be taken away in the admin (issue 11,
item 2): a billed charge stays on its subscription, and a subscription,
account or charge that billed items point at cannot be deleted."""

import datetime

import pytest
from django.db import IntegrityError, connection, transaction
from django.urls import reverse

from billruns import services
from customers.models import Account, Charge, Subscription
from invoices.models import Document, DocumentItem, DocumentStatus
from tests.factories import ChargeFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db

JAN = datetime.date(2026, 1, 1)


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def posted(superuser):
    """An account with two subscriptions; the first one's charge is on a Posted invoice."""
    first = SubscriptionFactory(start_date=JAN)
    second = SubscriptionFactory(account=first.account, start_date=JAN)
    charge = ChargeFactory(subscription=first, start_date=JAN)
    run = services.bill_run_create(target_date=JAN, account=first.account, enqueue=False)
    run = services.bill_run_execute(run_id=run.pk)
    services.bill_run_post(run=run, user=superuser, wait=True)
    invoice = Document.objects.get(bill_run=run)
    assert invoice.status == DocumentStatus.POSTED
    return {"first": first, "second": second, "charge": charge, "invoice": invoice}


def charge_form(charge, **changes):
    data = {
        "subscription": charge.subscription_id,
        "name": charge.name,
        "charge_type": charge.charge_type,
        "amount": str(charge.amount),
        "currency": charge.currency,
        "period": charge.period,
        "start_date": charge.start_date.isoformat(),
        "end_date": "",
    }
    data.update(changes)
    return data


def delete_url(obj):
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_delete", args=[obj.pk])


def items_shown(invoice):
    """The invoice's items as its pages show them: joined to their subscription."""
    return list(
        DocumentItem.objects.filter(document=invoice)
        .select_related("subscription")
        .values_list("subscription__number", "charge_name")
    )


def test_the_issues_scenario_move_the_billed_charge_then_delete_its_subscription(
    admin_client, posted
):
    """Reported: moving the billed charge to another subscription, then
    deleting the first one, left the Posted invoice with "No items."."""
    first, second, charge, invoice = (
        posted["first"],
        posted["second"],
        posted["charge"],
        posted["invoice"],
    )
    before = items_shown(invoice)
    change_url = reverse("admin:customers_charge_change", args=[charge.pk])

    response = admin_client.post(change_url, charge_form(charge, subscription=second.pk))
    assert response.status_code == 302
    response = admin_client.post(delete_url(first), {"post": "yes"})

    charge.refresh_from_db()
    assert charge.subscription_id == first.pk
    assert response.status_code == 200
    assert b"Cannot delete subscription" in response.content
    assert Subscription.objects.filter(pk=first.pk).exists()
    assert items_shown(invoice) == before != []


def test_a_billed_charges_subscription_is_read_only_and_says_why(admin_client, posted):
    charge = posted["charge"]

    response = admin_client.get(reverse("admin:customers_charge_change", args=[charge.pk]))

    assert response.status_code == 200
    assert b'name="subscription"' not in response.content
    assert b"is billed on" in response.content
    assert posted["invoice"].number.encode() in response.content


def test_an_unbilled_charge_can_still_be_moved(admin_client, posted):
    charge = ChargeFactory(subscription=posted["first"], start_date=JAN, name="Not yet billed")
    url = reverse("admin:customers_charge_change", args=[charge.pk])

    response = admin_client.post(url, charge_form(charge, subscription=posted["second"].pk))

    assert response.status_code == 302
    charge.refresh_from_db()
    assert charge.subscription_id == posted["second"].pk


def test_a_billed_subscription_cannot_move_to_another_account(admin_client, posted):
    first = posted["first"]
    other = SubscriptionFactory().account

    response = admin_client.get(reverse("admin:customers_subscription_change", args=[first.pk]))

    assert response.status_code == 200
    assert b'name="account"' not in response.content
    assert b"is billed on" in response.content
    assert other.pk != first.account_id


def test_a_subscription_billed_items_point_at_cannot_be_deleted_even_after_its_charge_moved(
    admin_client, posted
):
    """The items name the subscription themselves: even with the charge moved
    (outside the admin), the subscription is protected by the items."""
    Charge.objects.filter(pk=posted["charge"].pk).update(subscription=posted["second"])

    response = admin_client.post(delete_url(posted["first"]), {"post": "yes"})

    assert response.status_code == 200
    assert b"Cannot delete subscription" in response.content
    assert b"would require deleting the following protected related objects" in response.content
    assert b"Document item" in response.content
    assert Subscription.objects.filter(pk=posted["first"].pk).exists()


@pytest.mark.parametrize("what", ["charge", "account"])
def test_a_billed_charge_or_account_cannot_be_deleted(admin_client, posted, what):
    obj = posted["charge"] if what == "charge" else posted["first"].account

    response = admin_client.post(delete_url(obj), {"post": "yes"})

    assert response.status_code == 200
    assert f"Cannot delete {what}".encode() in response.content
    assert b"would require deleting the following protected related objects" in response.content
    assert type(obj).objects.filter(pk=obj.pk).exists()


def test_the_delete_selected_action_refuses_billed_subscriptions(admin_client, posted):
    Charge.objects.filter(pk=posted["charge"].pk).update(subscription=posted["second"])

    response = admin_client.post(
        reverse("admin:customers_subscription_changelist"),
        {
            "action": "delete_selected",
            "_selected_action": [posted["first"].pk],
            "post": "yes",
        },
    )

    assert response.status_code == 200
    assert b"would require deleting the following protected related objects" in response.content
    assert Subscription.objects.filter(pk=posted["first"].pk).exists()


def test_a_billed_charge_cannot_be_deleted_from_its_subscriptions_inline(admin_client, posted):
    first, charge = posted["first"], posted["charge"]
    url = reverse("admin:customers_subscription_change", args=[first.pk])
    data = {
        "number": first.number,
        "account": first.account_id,
        "status": first.status,
        "start_date": first.start_date.isoformat(),
        "charges-TOTAL_FORMS": "1",
        "charges-INITIAL_FORMS": "1",
        "charges-MIN_NUM_FORMS": "0",
        "charges-MAX_NUM_FORMS": "1000",
        "charges-0-id": charge.pk,
        "charges-0-subscription": first.pk,
        "charges-0-DELETE": "on",
        **{
            f"charges-0-{name}": value
            for name, value in charge_form(charge).items()
            if name != "subscription"
        },
    }

    response = admin_client.post(url, data)

    assert response.status_code == 200
    assert b"would require deleting the following protected related objects" in response.content
    assert Charge.objects.filter(pk=charge.pk).exists()


def test_the_database_refuses_an_item_whose_subscription_does_not_exist(posted):
    item = DocumentItem.objects.get(document=posted["invoice"])

    with pytest.raises(IntegrityError), transaction.atomic():
        DocumentItem.objects.filter(pk=item.pk).update(subscription_id=987654321)
        connection.check_constraints(table_names=[DocumentItem._meta.db_table])
    assert Account.objects.filter(pk=posted["first"].account_id).exists()
