"""The subscription page's change forms (INTERFACES.md, Pages): each
previews what the next bill run makes for the charge (the engine's own
numbers: a real run then makes the same), applies through the change
services (as amend: same rules, same messages), refuses with the rule's
message and nothing changed, and is a clerk's (a viewer only views)."""

import datetime
from decimal import Decimal

import pytest
from django.apps import apps
from django.urls import reverse

from billruns.services import bill_run_create, bill_run_execute
from customers.models import Charge, ChargePrice, Status, SubscriptionChange
from invoices.models import DocumentItem, ItemKind, TenantSettings
from tests.factories import AccountFactory, ChargeFactory, SubscriptionFactory

D = datetime.date


def run(target):
    bill_run = bill_run_create(target_date=target, enqueue=False)
    return bill_run_execute(run_id=bill_run.pk)


def run_items(bill_run):
    """[(kind, first day, last day, amount)] of a run, in the preview's order."""
    return [
        (i.kind, i.service_start, i.service_end, i.amount)
        for i in DocumentItem.objects.filter(document__bill_run=bill_run).order_by(
            "charge_id", "kind", "service_start", "id"
        )
    ]


@pytest.fixture
def today(monkeypatch):
    """The site's today, as the forms read it (the preview's target date is
    the later of today and the effective date)."""

    def set_today(day):
        monkeypatch.setattr("django.utils.timezone.localdate", lambda *args: day)

    return set_today


@pytest.fixture
def pro_plan():
    """The rules' example: BCD 1, monthly 100.00 from 2026-03-01, billed
    [03-01, 04-01) and [04-01, 05-01) by a run with target date 2026-04-01."""
    account = AccountFactory(bill_cycle_day=1)
    subscription = SubscriptionFactory(account=account, start_date=D(2026, 3, 1))
    charge = ChargeFactory(
        subscription=subscription,
        name="Pro plan",
        amount=Decimal("100.00"),
        start_date=D(2026, 3, 1),
    )
    run(D(2026, 4, 1))
    charge.refresh_from_db()
    return charge


def url(name, charge_or_subscription):
    subscription = getattr(charge_or_subscription, "subscription", charge_or_subscription)
    return reverse(f"subscription_changes:{name}", args=[subscription.number])


def snapshot():
    """Every row of every table a change or a run could write."""
    names = [
        ("customers", "Charge"),
        ("customers", "ChargePrice"),
        ("customers", "SubscriptionChange"),
        ("customers", "Subscription"),
        ("customers", "Pricing"),
        ("customers", "PricingTier"),
        ("invoices", "Document"),
        ("invoices", "DocumentItem"),
    ]
    return {
        name: sorted(map(repr, apps.get_model(app, name).objects.values_list()))
        for app, name in names
    }


def preview_amounts(html):
    return [
        Decimal(part.split("<", 1)[0].replace(",", "").replace("−", "-").split()[-1])
        for part in html.split('data-testid="preview-amount">')[1:]
    ]


@pytest.mark.django_db
def test_the_subscription_page_shows_the_change_buttons_to_a_clerk(client, clerk, pro_plan):
    client.force_login(clerk)
    html = client.get(pro_plan.subscription.get_absolute_url()).content.decode()
    for testid in ("add-charge", "change-price", "remove-charge", "cancel-subscription"):
        assert f'data-testid="{testid}"' in html
    assert f'href="{url("change_price", pro_plan)}?charge={pro_plan.number}"' in html


@pytest.mark.django_db
def test_a_viewer_sees_no_buttons_and_is_refused_the_forms(client, viewer, pro_plan):
    client.force_login(viewer)
    html = client.get(pro_plan.subscription.get_absolute_url()).content.decode()
    assert 'data-testid="add-charge"' not in html
    before = snapshot()
    assert client.get(url("cancel", pro_plan)).status_code == 403
    response = client.post(
        url("cancel", pro_plan), {"effective_date": "2026-03-11", "action": "confirm"}
    )
    assert response.status_code == 403
    assert snapshot() == before


def user_with(django_user_model, name, *codenames):
    """A user holding only the view permissions of the subscription page and
    ``codenames`` (customers'), in no role."""
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user(name, f"{name}@example.com", "pw")
    perms = ["view_account", "view_subscription", "view_charge", *codenames]
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="customers", codename__in=perms)
    )
    return user


@pytest.mark.django_db
def test_the_forms_need_the_permission_to_make_a_change_not_to_edit_an_account(
    client, django_user_model, pro_plan, today
):
    # A user who may edit an account's contact but not make a change is refused...
    editor = user_with(django_user_model, "editor", "change_account")
    client.force_login(editor)
    html = client.get(pro_plan.subscription.get_absolute_url()).content.decode()
    assert 'data-testid="change-price"' not in html
    before = snapshot()
    for name in ("add_charge", "change_price", "remove_charge", "cancel"):
        assert client.get(url(name, pro_plan)).status_code == 403
    response = client.post(
        url("cancel", pro_plan), {"effective_date": "2026-03-11", "action": "confirm"}
    )
    assert response.status_code == 403
    assert snapshot() == before

    # ...and one who may make a change (add_subscriptionchange) is let in.
    today(D(2026, 4, 20))
    changer = user_with(django_user_model, "changer", "add_subscriptionchange")
    client.force_login(changer)
    html = client.get(pro_plan.subscription.get_absolute_url()).content.decode()
    assert 'data-testid="change-price"' in html
    assert client.get(url("change_price", pro_plan)).status_code == 200
    response = client.post(
        url("remove_charge", pro_plan),
        {"charge": pro_plan.number, "effective_date": "2026-03-11", "action": "preview"},
    )
    assert response.status_code == 200
    assert preview_amounts(response.content.decode()) == [Decimal("-67.74"), Decimal("-100.00")]
    assert snapshot() == before


@pytest.mark.django_db
def test_anonymous_users_are_sent_to_sign_in(client, pro_plan):
    response = client.get(url("add_charge", pro_plan))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_the_price_change_preview_is_the_rules_example_and_changes_nothing(
    client, clerk, pro_plan, today
):
    today(D(2026, 5, 1))
    client.force_login(clerk)
    before = snapshot()
    response = client.post(
        url("change_price", pro_plan),
        {
            "charge": pro_plan.number,
            "effective_date": "2026-03-11",
            "amount": "160.00",
            "action": "preview",
        },
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert snapshot() == before
    assert html.count('data-testid="preview-adjustment"') == 2
    assert html.count('data-testid="preview-item"') == 3
    assert "Unused time on Pro plan, 11 Mar – 31 Mar 2026" in html
    assert "Unused time on Pro plan, 1 Apr – 30 Apr 2026" in html
    preview = response.context["preview"]
    assert [(row.kind, row.start, row.end, row.amount) for row in preview.rows] == [
        (ItemKind.ADJUSTMENT, D(2026, 3, 11), D(2026, 3, 31), Decimal("-67.74")),
        (ItemKind.ADJUSTMENT, D(2026, 4, 1), D(2026, 4, 30), Decimal("-100.00")),
        (ItemKind.CHARGE, D(2026, 3, 11), D(2026, 3, 31), Decimal("108.39")),
        (ItemKind.CHARGE, D(2026, 4, 1), D(2026, 4, 30), Decimal("160.00")),
        (ItemKind.CHARGE, D(2026, 5, 1), D(2026, 5, 31), Decimal("160.00")),
    ]
    assert preview.target_date == D(2026, 5, 1)


@pytest.mark.django_db
def test_a_confirmed_price_change_is_applied_and_the_run_makes_what_the_preview_showed(
    client, clerk, pro_plan, today
):
    today(D(2026, 5, 1))
    client.force_login(clerk)
    data = {"charge": pro_plan.number, "effective_date": "2026-03-11", "amount": "160.00"}
    preview = client.post(url("change_price", pro_plan), {**data, "action": "preview"}).context[
        "preview"
    ]
    response = client.post(
        url("change_price", pro_plan), {**data, "action": "confirm", "digest": preview.digest}
    )
    assert response.status_code == 302
    assert response["Location"] == pro_plan.subscription.get_absolute_url()
    change = SubscriptionChange.objects.get(charge=pro_plan)
    assert change.made_by == clerk
    assert ChargePrice.objects.get(charge=pro_plan).amount == Decimal("160.00")

    made = run_items(run(preview.target_date))
    assert made == [(row.kind, row.start, row.end, row.amount) for row in preview.rows]

    page = client.get(pro_plan.subscription.get_absolute_url()).content.decode()
    assert page.count('data-testid="subscription-change"') == 1
    assert "100.00 → 160.00 from 2026-03-11" in page
    assert page.count('data-testid="adjustment-item"') == 2
    assert 'data-testid="price-segment"' in page


@pytest.mark.django_db
def test_a_confirmation_sent_twice_applies_once(client, clerk, pro_plan, today):
    today(D(2026, 5, 1))
    client.force_login(clerk)
    data = {"charge": pro_plan.number, "effective_date": "2026-04-01", "quantity": "3"}
    digest = (
        client.post(url("change_price", pro_plan), {**data, "action": "preview"})
        .context["preview"]
        .digest
    )
    confirm = {**data, "action": "confirm", "digest": digest}
    assert client.post(url("change_price", pro_plan), confirm).status_code == 302
    second = client.post(url("change_price", pro_plan), confirm)
    assert second.status_code == 400  # the rules refuse the same change again
    assert SubscriptionChange.objects.filter(charge=pro_plan).count() == 1


@pytest.mark.django_db
def test_a_confirmation_after_a_run_billed_meanwhile_shows_the_new_preview(
    client, clerk, pro_plan, today
):
    today(D(2026, 5, 1))
    client.force_login(clerk)
    data = {"name": "Support", "charge_type": "recurring", "amount": "50.00", "period": "month"}
    data["start_date"] = "2026-03-01"
    digest = (
        client.post(url("add_charge", pro_plan), {**data, "action": "preview"})
        .context["preview"]
        .digest
    )
    confirm = {**data, "action": "confirm", "digest": digest}
    assert client.post(url("add_charge", pro_plan), confirm).status_code == 302
    # The same form again: a second Support would be added; the digest, which
    # covers the subscription's latest change, stops it.
    again = client.post(url("add_charge", pro_plan), confirm)
    assert again.status_code == 409
    assert again.context["preview"] is not None
    assert Charge.objects.filter(subscription=pro_plan.subscription, name="Support").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(("checked", "taxable"), [({"taxable": "on"}, True), ({}, False)])
def test_a_charge_added_from_the_page_is_taxable_unless_unchecked(
    client, clerk, pro_plan, today, checked, taxable
):
    today(D(2026, 5, 1))
    client.force_login(clerk)
    form = client.get(url("add_charge", pro_plan)).context["form"]
    assert form["taxable"].initial is True  # the box is checked when the form opens
    data = {"name": "Support", "charge_type": "recurring", "amount": "50.00", "period": "month"}
    data.update(start_date="2026-05-01", **checked)
    digest = (
        client.post(url("add_charge", pro_plan), {**data, "action": "preview"})
        .context["preview"]
        .digest
    )

    confirm = {**data, "action": "confirm", "digest": digest}
    assert client.post(url("add_charge", pro_plan), confirm).status_code == 302

    assert Charge.objects.get(subscription=pro_plan.subscription, name="Support").taxable is taxable


@pytest.mark.django_db
def test_a_refused_change_shows_the_rules_message_and_changes_nothing(client, clerk, pro_plan):
    client.force_login(clerk)
    before = snapshot()
    response = client.post(
        url("change_price", pro_plan),
        {
            "charge": pro_plan.number,
            "effective_date": "2026-03-01",
            "amount": "160.00",
            "action": "confirm",
            "digest": "x",
        },
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert (
        f"{pro_plan.number}: a price change effective 2026-03-01 is not after the charge&#x27;s "
        "start 2026-03-01"
    ) in html
    assert snapshot() == before


@pytest.mark.django_db
def test_a_malformed_amount_gets_the_amend_message_on_its_field(client, clerk, pro_plan):
    client.force_login(clerk)
    before = snapshot()
    response = client.post(
        url("change_price", pro_plan),
        {"charge": pro_plan.number, "effective_date": "2026-03-11", "amount": "1.234"},
    )
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert "amount" in errors
    assert snapshot() == before


@pytest.mark.django_db
def test_removing_a_charge_previews_the_credit_and_the_run_makes_a_credit_memo(
    client, clerk, pro_plan, today
):
    TenantSettings.objects.update_or_create(id=1, defaults={"advanced_ar_settlement": True})
    today(D(2026, 5, 1))
    client.force_login(clerk)
    data = {"charge": pro_plan.number, "effective_date": "2026-03-11"}
    preview = client.post(url("remove_charge", pro_plan), {**data, "action": "preview"}).context[
        "preview"
    ]
    assert [row.amount for row in preview.rows] == [Decimal("-67.74"), Decimal("-100.00")]
    assert preview.total == Decimal("-167.74")
    response = client.post(
        url("remove_charge", pro_plan), {**data, "action": "confirm", "digest": preview.digest}
    )
    assert response.status_code == 302
    pro_plan.refresh_from_db()
    assert pro_plan.end_date == D(2026, 3, 11)
    bill_run = run(preview.target_date)
    document = bill_run.documents.get()
    assert document.document_type == "credit_memo"
    assert document.amount == Decimal("167.74")
    assert run_items(bill_run) == [(r.kind, r.start, r.end, r.amount) for r in preview.rows]


@pytest.mark.django_db
def test_canceling_the_subscription_from_its_page(client, clerk, pro_plan, today):
    today(D(2026, 5, 1))
    client.force_login(clerk)
    data = {"effective_date": "2026-04-15"}
    preview = client.post(url("cancel", pro_plan), {**data, "action": "preview"}).context["preview"]
    assert [(row.kind, row.start, row.amount) for row in preview.rows] == [
        (ItemKind.ADJUSTMENT, D(2026, 4, 15), Decimal("-53.33")),
    ]
    response = client.post(
        url("cancel", pro_plan), {**data, "action": "confirm", "digest": preview.digest}
    )
    assert response.status_code == 302
    subscription = pro_plan.subscription
    subscription.refresh_from_db()
    assert subscription.status == Status.CANCELED
    assert subscription.cancel_date == D(2026, 4, 15)
    assert run_items(run(preview.target_date)) == [
        (r.kind, r.start, r.end, r.amount) for r in preview.rows
    ]
    page = client.get(subscription.get_absolute_url()).content.decode()
    assert 'data-testid="add-charge"' not in page  # no change to a Canceled subscription


@pytest.mark.django_db
def test_adding_a_usage_charge_with_graduated_tiers(client, clerk, pro_plan, today):
    today(D(2026, 5, 1))
    client.force_login(clerk)
    data = {
        "name": "API calls",
        "charge_type": "usage",
        "period": "month",
        "start_date": "2026-04-01",
        "unit": "calls",
        "pricing_model": "graduated",
        "tiers": "1000, 0\n10000, 0.002, 5.00\n, 0.001",
    }
    preview = client.post(url("add_charge", pro_plan), {**data, "action": "preview"}).context[
        "preview"
    ]
    assert [(row.kind, row.start, row.amount) for row in preview.rows] == [
        (ItemKind.CHARGE, D(2026, 4, 1), Decimal("0.00"))
    ]
    response = client.post(
        url("add_charge", pro_plan), {**data, "action": "confirm", "digest": preview.digest}
    )
    assert response.status_code == 302
    charge = Charge.objects.get(name="API calls")
    assert charge.pricing.model == "graduated"
    assert charge.pricing.tiers.count() == 3


@pytest.mark.django_db
def test_a_bad_tier_line_is_refused_on_its_field(client, clerk, pro_plan):
    client.force_login(clerk)
    response = client.post(
        url("add_charge", pro_plan),
        {
            "name": "API calls",
            "charge_type": "usage",
            "period": "month",
            "start_date": "2026-04-01",
            "unit": "calls",
            "pricing_model": "volume",
            "tiers": "1000",
        },
    )
    assert response.status_code == 400
    assert "line 1" in str(response.context["form"].errors["tiers"])
