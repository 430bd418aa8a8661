import datetime
from decimal import Decimal

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billruns.models import (
    BillRun,
    BillRunChunk,
    BillRunEvent,
    BillRunFailure,
    RunStatus,
    Schedule,
    ScheduleEvent,
)
from customers.models import AccountTaxCode
from customers.services import tax_rate_set
from invoices.models import (
    CreditMemo,
    DocumentDelivery,
    DocumentStatus,
    Invoice,
    NumberSequence,
    TenantSettings,
)
from tests.factories import (
    ChargeFactory,
    CreditApplicationFactory,
    CreditMemoFactory,
    DocumentFactory,
    DocumentItemFactory,
    OneTimeChargeFactory,
    PaymentFactory,
    SubscriptionFactory,
    UsageChargeFactory,
    UsageRecordFactory,
)

pytestmark = pytest.mark.django_db

REGISTERED = sorted(admin.site._registry, key=lambda model: model._meta.label)
OUR_APPS = {"customers", "invoices", "billruns"}


def make_billing_data(i, user):
    """One of every model the admin shows; i keeps numbers unique."""
    subscription = SubscriptionFactory()
    account = subscription.account
    charge = ChargeFactory(subscription=subscription)
    OneTimeChargeFactory(subscription=subscription)
    usage = UsageChargeFactory(subscription=subscription)
    UsageRecordFactory(charge=usage, record_id=f"u{i}")
    tax_rate = tax_rate_set(f"TAX{i}", "20", name=f"Tax {i}", user=user)
    AccountTaxCode.objects.create(account=account, tax_rate=tax_rate, position=1)
    schedule = Schedule.objects.create(name=f"Monthly {i}", owner=user)
    ScheduleEvent.objects.create(schedule=schedule, kind="created", user=user)
    run = BillRun.objects.create(
        number=f"BR-{i:08d}",
        status=RunStatus.COMPLETED,
        target_date=datetime.date(2026, 2, 1),
        invoice_date=datetime.date(2026, 2, 1),
        batches=[1],
        created_by=user,
        schedule=schedule,
        has_errors=True,
        accounts_processed=2,
        accounts_failed=1,
    )
    invoice = DocumentFactory(
        number=f"INV{i:08d}",
        account=account,
        bill_run=run,
        status=DocumentStatus.POSTED,
        amount=Decimal("100.00"),
    )
    credit_memo = CreditMemoFactory(
        number=f"CM{i:08d}",
        account=account,
        bill_run=run,
        status=DocumentStatus.DRAFT,
        amount=Decimal("20.00"),
    )
    for document in (invoice, credit_memo):
        DocumentItemFactory(
            document=document,
            charge=charge,
            service_start=datetime.date(2026, 2, 1) + datetime.timedelta(days=document.pk),
            service_end=datetime.date(2026, 2, 28) + datetime.timedelta(days=document.pk),
            amount=document.amount,
        )
    PaymentFactory(
        document=invoice,
        amount=Decimal("10.00"),
        payment_date=datetime.date(2026, 2, 10),
        method="card",
        created_by=user,
    )
    CreditApplicationFactory(
        credit_memo=credit_memo, invoice=invoice, amount=Decimal("5.00"), applied_by=user
    )
    DocumentDelivery.objects.create(
        document=invoice, to_address=f"billing{i}@example.com", status="sent", attempts=1
    )
    BillRunChunk.objects.create(
        bill_run=run, index=0, account_ids=[account.pk], account_count=1, status="done"
    )
    BillRunFailure.objects.create(
        bill_run=run, account=account, subscription=None, reason="Bill-to contact is missing"
    )
    BillRunEvent.objects.create(
        bill_run=run, from_status="Processing", to_status="Completed", user=user, at=timezone.now()
    )
    NumberSequence.objects.create(name=f"SEQ{i}", last_value=i)
    TenantSettings.load()
    return {"invoice": invoice, "credit_memo": credit_memo, "run": run}


@pytest.fixture
def data(superuser):
    return make_billing_data(1, superuser)


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


def changelist_url(model):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def change_url(model, pk):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[pk])


@pytest.mark.parametrize("model", REGISTERED, ids=lambda model: model._meta.label)
def test_changelist_search_and_change_form_render(admin_client, data, superuser, rf, model):
    model_admin = admin.site._registry[model]

    response = admin_client.get(changelist_url(model), follow=True)
    assert response.status_code == 200

    response = admin_client.get(changelist_url(model), {"q": "1"}, follow=True)
    assert response.status_code == 200

    request = rf.get("/")
    request.user = superuser
    obj = model_admin.get_queryset(request).first()
    if obj is None:
        assert model._meta.app_label not in OUR_APPS, f"make_billing_data makes no {model}"
        return
    response = admin_client.get(change_url(model, obj.pk))
    assert response.status_code == 200


@pytest.mark.parametrize("model", REGISTERED, ids=lambda model: model._meta.label)
def test_changelist_queries_do_not_grow_with_rows(admin_client, superuser, model):
    make_billing_data(1, superuser)
    # A first request fills the process-wide caches (content types).
    admin_client.get(changelist_url(model), follow=True)
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(changelist_url(model), follow=True).status_code == 200

    for i in range(2, 6):
        make_billing_data(i, superuser)
    with CaptureQueriesContext(connection) as many:
        assert admin_client.get(changelist_url(model), follow=True).status_code == 200

    assert len(many) == len(few), (
        [query["sql"][:150] for query in few.captured_queries],
        [query["sql"][:150] for query in many.captured_queries],
    )


def test_posted_document_change_form_has_no_save_button(admin_client, data):
    response = admin_client.get(reverse("admin:invoices_invoice_change", args=[data["invoice"].pk]))

    assert response.status_code == 200
    assert b'name="_save"' not in response.content


def test_draft_document_change_form_can_save_its_due_date(admin_client, data):
    credit_memo = data["credit_memo"]
    url = reverse("admin:invoices_creditmemo_change", args=[credit_memo.pk])

    response = admin_client.get(url)
    assert b'name="_save"' in response.content

    response = admin_client.post(url, {"due_date": "2026-04-01", **inline_management_data()})
    assert response.status_code == 302
    credit_memo.refresh_from_db()
    assert credit_memo.due_date == datetime.date(2026, 4, 1)
    assert credit_memo.amount == Decimal("20.00")


def inline_management_data():
    data = {}
    for prefix in ("items", "applications_made"):
        data.update(
            {
                f"{prefix}-TOTAL_FORMS": "0",
                f"{prefix}-INITIAL_FORMS": "0",
                f"{prefix}-MIN_NUM_FORMS": "0",
                f"{prefix}-MAX_NUM_FORMS": "0",
            }
        )
    return data


def test_posted_document_refuses_a_change(admin_client, data):
    url = reverse("admin:invoices_invoice_change", args=[data["invoice"].pk])

    response = admin_client.post(url, {"due_date": "2026-04-01"})

    assert response.status_code == 403
    data["invoice"].refresh_from_db()
    assert data["invoice"].due_date == datetime.date(2026, 3, 3)


@pytest.mark.parametrize(
    "url_name",
    ["invoices_invoice_add", "invoices_creditmemo_add", "billruns_billrun_add"],
)
def test_documents_and_runs_are_never_added_by_hand(admin_client, url_name):
    assert admin_client.get(reverse(f"admin:{url_name}")).status_code == 403


def test_bill_run_is_read_only(admin_client, data):
    run = data["run"]
    url = reverse("admin:billruns_billrun_change", args=[run.pk])

    response = admin_client.get(url)
    assert b'name="_save"' not in response.content
    assert b"Bill-to contact is missing" in response.content

    response = admin_client.post(url, {"status": RunStatus.POSTED})
    assert response.status_code == 403
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert (
        admin_client.post(reverse("admin:billruns_billrun_delete", args=[run.pk])).status_code
        == 403
    )


def test_a_run_shows_the_charge_types_it_excluded_read_only(admin_client, data):
    run = data["run"]
    url = reverse("admin:billruns_billrun_change", args=[run.pk])
    shown_without = admin_client.get(url).content.decode()
    BillRun.objects.filter(pk=run.pk).update(exclude_charge_types=["one_time", "usage"])

    html = admin_client.get(url).content.decode()

    assert "Excluded charge types" in html
    assert '<div class="readonly">One-time, Usage</div>' in html
    assert '<div class="readonly">None</div>' in shown_without
    assert 'name="exclude_charge_types"' not in html


def test_a_schedule_shows_the_charge_types_its_runs_exclude(admin_client, data):
    schedule = Schedule.objects.get()
    Schedule.objects.filter(pk=schedule.pk).update(exclude_charge_types=["usage"])

    html = admin_client.get(reverse("admin:billruns_schedule_change", args=[schedule.pk]))

    assert "Exclude charge types" in html.content.decode()
    assert "[&quot;usage&quot;]" in html.content.decode()


def test_tenant_settings_changelist_goes_to_the_singleton(admin_client):
    TenantSettings.objects.all().delete()

    response = admin_client.get(changelist_url(TenantSettings))

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:invoices_tenantsettings_change", args=[1])
    assert TenantSettings.objects.filter(pk=1).exists()


def test_tenant_settings_toggle_advanced_ar_settlement(admin_client):
    url = reverse("admin:invoices_tenantsettings_change", args=[TenantSettings.load().pk])

    response = admin_client.post(url, {"advanced_ar_settlement": "on"})
    assert response.status_code == 302
    assert TenantSettings.load().advanced_ar_settlement is True

    response = admin_client.post(url, {})
    assert response.status_code == 302
    assert TenantSettings.load().advanced_ar_settlement is False


def test_tenant_settings_cannot_be_added_or_deleted(admin_client):
    settings = TenantSettings.load()

    assert admin_client.get(reverse("admin:invoices_tenantsettings_add")).status_code == 403
    delete_url = reverse("admin:invoices_tenantsettings_delete", args=[settings.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert TenantSettings.objects.filter(pk=1).exists()


def test_schedules_are_not_written_in_the_admin(admin_client, data):
    schedule = Schedule.objects.get()

    assert admin_client.get(reverse("admin:billruns_schedule_add")).status_code == 403
    response = admin_client.post(
        reverse("admin:billruns_schedule_change", args=[schedule.pk]), {"name": "Renamed"}
    )
    assert response.status_code == 403
    schedule.refresh_from_db()
    assert schedule.name == "Monthly 1"


def test_staff_viewer_sees_runs_but_cannot_add_one(client, viewer, data):
    viewer.is_staff = True
    viewer.save()
    client.force_login(viewer)

    assert client.get(changelist_url(BillRun)).status_code == 200
    assert client.get(reverse("admin:billruns_billrun_add")).status_code == 403
    assert client.get(changelist_url(TenantSettings)).status_code == 403


def test_document_lists_offer_posting_to_those_who_may_post(admin_client, client, viewer, data):
    assert b"post_selected_documents" in admin_client.get(changelist_url(Invoice)).content
    assert b"post_selected_documents" in admin_client.get(changelist_url(CreditMemo)).content

    viewer.is_staff = True
    viewer.save()
    client.force_login(viewer)
    assert b"post_selected_documents" not in client.get(changelist_url(Invoice)).content
