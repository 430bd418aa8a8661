"""Preview runs (INTERFACES.md, Previews; issue 17 item 1).

A preview goes through the real engine and the same chunks, so the real run
made right after it with nothing changed in between makes the same
documents, items and failures; and it consumes nothing: no number, no
charged-through date, no usage period, no lock a real run waits for, and
its rows stay out of everything real.
"""

import datetime
import io
import json
import uuid
from decimal import Decimal

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from billruns import selectors, services
from billruns.models import BillRun, BillRunFailure, RunStatus
from customers.models import Charge
from invoices import sequences
from invoices.models import Document, DocumentItem, DocumentStatus, TenantSettings
from notifications.models import EmailDelivery, RunNotification
from tests.factories import (
    AccountFactory,
    ChargeFactory,
    OneTimeChargeFactory,
    SubscriptionFactory,
    UsageChargeFactory,
    UsageRecordFactory,
)
from tests.test_billrun_adjustments import change_price, remove

D = datetime.date
FEB, MAR, APR = D(2026, 2, 1), D(2026, 3, 1), D(2026, 4, 1)

# The columns of an item that say what it bills (its id and document aside).
ITEM_FIELDS = (
    "charge_id",
    "subscription_id",
    "charge_name",
    "service_start",
    "service_end",
    "quantity",
    "unit",
    "unit_price",
    "rating",
    "amount",
    "previous_charged_through",
    "kind",
    "adjusts_id",
    "pricing_id",
)


def execute(target=MAR, *, preview=False, **options):
    run = services.bill_run_create(target_date=target, preview=preview, enqueue=False, **options)
    return services.bill_run_execute(run_id=run.pk)


def made(run):
    """What a run made, without what only a real run has (numbers, Draft):
    its counters and totals, its failures, and per account its document
    and every column of its items."""
    run.refresh_from_db()
    summary = selectors.run_summary(run, documents=True)
    documents = []
    for document in summary.pop("documents"):
        document.pop("number")
        document.pop("status")
        documents.append(document)
    for key in ("number", "status", "preview", "created_by"):
        summary.pop(key)
    items = {}
    for row in DocumentItem.all_objects.filter(document__bill_run=run).order_by("id"):
        key = (row.document.account_id, row.document.document_type)
        items.setdefault(key, []).append(tuple(getattr(row, name) for name in ITEM_FIELDS))
    summary["documents"] = sorted(documents, key=lambda d: (d["account"], d["type"]))
    summary["failures"] = sorted(summary["failures"], key=lambda f: json.dumps(f))
    summary["items"] = {key: sorted(rows, key=repr) for key, rows in items.items()}
    return summary


def book():
    """Recurring, one-time, usage, a credit, a failing account, a change."""
    good = AccountFactory(bill_cycle_day=15)
    sub = SubscriptionFactory(account=good, start_date=D(2026, 1, 15))
    plan = ChargeFactory(subscription=sub, amount=Decimal("120.00"))
    OneTimeChargeFactory(subscription=sub)
    usage = UsageChargeFactory(subscription=sub)
    UsageRecordFactory(charge=usage, date=D(2026, 1, 20), quantity=Decimal("1234"))
    credit = AccountFactory(bill_cycle_day=1)
    OneTimeChargeFactory(
        subscription=SubscriptionFactory(account=credit, start_date=FEB), amount=Decimal("-80.00")
    )
    AccountFactory(bill_to_email="").subscriptions.create(
        number="SNOMAIL", start_date=FEB
    ).charges.create(
        name="Plan",
        charge_type="recurring",
        amount=Decimal("10.00"),
        currency="USD",
        period="month",
        start_date=FEB,
    )
    return plan


def snapshot():
    """Every real table's rows (previews' own rows aside: the runs and what
    belongs to one run), the sequences' next values."""
    skip = {
        "billruns.BillRun",
        "billruns.BillRunChunk",
        "billruns.BillRunEvent",
        "billruns.BillRunFailure",
        "billruns.BillRunSubscription",
        "billruns.RunReview",
        "invoices.NumberSequence",  # (as next_numbers, below)
        "billruns.ReviewLine",
        "notifications.RunNotification",
        "sessions.Session",
        "core.ChangeStamp",  # (moves with every write: core.stamps)
    }
    rows = {}
    for model in apps.get_models():
        label = model._meta.label
        if label in skip or label.startswith("django_q.") or model._meta.proxy:
            continue
        rows[label] = list(model._base_manager.order_by("pk").values())
    rows["invoices.Document"] = list(Document.objects.order_by("pk").values())
    rows["invoices.DocumentItem"] = list(DocumentItem.objects.order_by("pk").values())
    rows["all documents"] = Document.all_objects.exclude(status=DocumentStatus.PREVIEW).count()
    rows["all items"] = DocumentItem.all_objects.filter(preview=False).count()
    rows["sequences"] = next_numbers()
    rows["charged through"] = list(
        Charge.objects.order_by("pk").values_list("pk", "charged_through_date")
    )
    return rows


def next_numbers():
    """The next value of each document number sequence, read without taking
    one. (A preview is a run: it takes a run number, BR, as any run does.)"""
    names = [name for name in sequences.FORMATS if name != "BR"]
    if connection.vendor != "postgresql":
        from invoices.models import NumberSequence

        return dict(NumberSequence.objects.filter(name__in=names).values_list("name", "last_value"))
    found = {}
    with connection.cursor() as cursor:
        for name in names:
            cursor.execute(
                f"SELECT last_value, is_called FROM {sequences.pg_sequence_name(name)}"  # noqa: S608
            )
            found[name] = cursor.fetchone()
    return found


# --- a preview is what the real run makes ---------------------------------------


@pytest.mark.django_db
def test_a_preview_then_the_real_run_make_the_same_documents_items_and_failures():
    plan = book()
    first = execute(FEB)  # billed once: the change below makes adjustments
    change_price(plan, D(2026, 2, 5), amount="150.00")
    preview = execute(MAR, preview=True)
    real = execute(MAR)
    assert preview.status == RunStatus.COMPLETED and preview.preview
    assert made(preview) == made(real)
    seen = made(real)
    assert seen["documents"] and seen["failures"]  # (the book billed and failed)
    assert any(row[11] == "adjustment" for rows in seen["items"].values() for row in rows)
    assert first.status == RunStatus.COMPLETED


@pytest.mark.django_db
def test_a_previews_show_json_has_preview_documents_without_numbers_and_its_own_totals():
    book()
    preview = execute(MAR, preview=True)
    out = io.StringIO()
    call_command("billrun", "show", preview.number, "--json", "--documents", stdout=out)
    shown = json.loads(out.getvalue())
    assert shown["preview"] is True and shown["status"] == "Completed"
    assert shown["documents"]
    assert {d["status"] for d in shown["documents"]} == {"Preview"}
    assert {d["number"] for d in shown["documents"]} == {None}
    assert shown["invoices"] == sum(d["type"] == "invoice" for d in shown["documents"])
    total = sum(
        Decimal(d["amount"]) * (-1 if d["type"] == "credit_memo" else 1) for d in shown["documents"]
    )
    assert Decimal(shown["totals"]["USD"]) == total
    # and a real run's key says false
    real = execute(MAR)
    out = io.StringIO()
    call_command("billrun", "show", real.number, "--json", stdout=out)
    assert json.loads(out.getvalue())["preview"] is False


class APreviewMatchesTheRealRunOnRandomBooks(TestCase):
    """Property: over random books (mixed periods, one-time fees, credits,
    usage, failing accounts, a change after a first run, Advanced AR on or
    off, excluded types), a preview and the real run right after it make
    the same documents, items and failures."""

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        accounts=st.lists(
            st.tuples(
                st.integers(1, 31),  # bill cycle day
                st.sampled_from(["month", "quarter", "annual"]),
                st.integers(0, 80),  # start, days after 2026-01-01
                st.decimals(min_value=-50, max_value=500, places=2),  # one-time fee
                st.integers(0, 5000),  # usage quantity (0: no usage charge)
                st.booleans(),  # no bill-to contact: fails
            ),
            min_size=1,
            max_size=6,
        ),
        first_run=st.one_of(st.none(), st.integers(20, 70)),
        change=st.one_of(st.none(), st.tuples(st.integers(1, 60), st.booleans())),
        target=st.integers(40, 150),
        advanced_ar=st.booleans(),
        exclude=st.lists(st.sampled_from(["one_time", "recurring", "usage"]), max_size=1),
    )
    def test_same_documents(self, accounts, first_run, change, target, advanced_ar, exclude):
        TenantSettings.objects.update_or_create(
            id=1, defaults={"advanced_ar_settlement": advanced_ar}
        )
        jan = D(2026, 1, 1)
        plans = []
        for bcd, period, start_days, fee, usage, fails in accounts:
            start = jan + datetime.timedelta(days=start_days)
            account = AccountFactory(bill_cycle_day=bcd, bill_to_email="" if fails else "a@b.c")
            sub = SubscriptionFactory(account=account, start_date=start)
            plans.append(ChargeFactory(subscription=sub, period=period))
            if fee:
                OneTimeChargeFactory(subscription=sub, amount=fee)
            if usage:
                charge = UsageChargeFactory(subscription=sub)
                UsageRecordFactory(charge=charge, date=start, quantity=Decimal(usage))
        if first_run is not None:
            execute(jan + datetime.timedelta(days=first_run))
            if change is not None:
                days, ends = change
                day = jan + datetime.timedelta(days=days)
                if day > plans[0].start_date:
                    if ends:
                        remove(plans[0], day)
                    else:
                        change_price(plans[0], day, amount="77.77")
        on = jan + datetime.timedelta(days=target)
        preview = execute(on, preview=True, exclude_charge_types=exclude)
        real = execute(on, exclude_charge_types=exclude)
        assert preview.status == real.status == RunStatus.COMPLETED
        assert made(preview) == made(real)


# --- a preview consumes nothing ---------------------------------------------------


@pytest.mark.django_db
def test_a_preview_changes_nothing_real():
    plan = book()
    execute(FEB)
    change_price(plan, D(2026, 2, 5), amount="150.00")
    sequences.allocate("INV")  # (a sequence that has started)
    before = snapshot()
    preview = execute(MAR, preview=True)
    assert preview.invoices_count > 0
    after = snapshot()
    assert after == before
    # and the preview's own rows are there, out of the default managers
    assert Document.all_objects.filter(bill_run=preview).count() == (
        preview.invoices_count + preview.credit_memos_count
    )
    assert not Document.objects.filter(bill_run=preview).exists()
    assert not DocumentItem.objects.filter(document__bill_run=preview).exists()


@pytest.mark.django_db
def test_a_preview_is_out_of_every_list_total_and_check_of_real_documents(client, superuser):
    plan = book()
    preview = execute(MAR, preview=True)
    account = plan.subscription.account
    client.force_login(superuser)
    # the documents list and its export, the account's page
    page = client.get(reverse("invoices:list"))
    assert page.status_code == 200 and "Preview" not in page.content.decode().split("<main")[-1]
    export = client.get(reverse("invoices:list") + "?_export=csv")
    assert export.status_code == 200 and b"Preview" not in export.content
    assert not account.documents.exists()
    # nor does an account's page list the preview's documents or failures
    failing = BillRunFailure.objects.get(bill_run=preview).account
    for shown in (account, failing):
        url = reverse("customers:account_detail", args=[shown.number])
        html = client.get(url).content.decode()
        assert preview.number not in html
    # a later usage record in the previewed period is not late
    from invoices.usage import usage_record_billed_on

    usage = Charge.objects.get(subscription=plan.subscription, charge_type="usage")
    assert usage_record_billed_on(charge_id=usage.pk, day=D(2026, 1, 25)) is None
    # a real run afterwards bills the same pieces (no unique index collides)
    real = execute(MAR)
    assert made(real)["documents"] == made(preview)["documents"]
    # and the real run's cancel guard ignores a later preview
    execute(APR, preview=True)
    canceled = services.bill_run_cancel(run=real, user=None)
    assert canceled.status == RunStatus.CANCELED


@pytest.mark.django_db
def test_the_review_never_compares_with_a_preview_and_works_for_one():
    from billruns import review

    book()
    real = execute(FEB)
    preview = execute(MAR, preview=True)
    later = execute(MAR)
    assert review.previous_run(later) == real
    assert review.previous_run(preview) == real
    state = review.review_state(later, preview.number)
    assert state.against == real and "preview" in state.refused
    assert review.review_state(preview).review is not None


# --- what a preview cannot do -------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("option", ["--auto-post", "--auto-email", "--no-email-for-zero-amount"])
def test_preview_with_a_posting_or_email_option_is_a_malformed_command_line(option):
    with pytest.raises(CommandError) as refused:
        call_command("billrun", "create", "--preview", option)
    assert refused.value.returncode == 2
    assert not BillRun.objects.exists()


@pytest.mark.django_db
def test_the_service_refuses_the_same_options():
    for option in ("auto_post", "auto_email", "no_email_for_zero_amount"):
        with pytest.raises(services.InvalidRunParameters) as refused:
            services.bill_run_create(target_date=MAR, preview=True, **{option: True})
        assert option in refused.value.errors
    assert not BillRun.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("action", "words"), [("post", "posted"), ("retry", "retried"), ("email", "emailed")]
)
def test_the_command_refuses_to_post_retry_or_email_a_preview(superuser, action, words):
    book()
    preview = execute(MAR, preview=True)
    assert preview.has_errors  # (a retry would have accounts to retry)
    before = made(preview)
    with pytest.raises(CommandError) as refused:
        call_command("billrun", action, preview.number)
    assert f"{preview.number} is a preview: a preview is never {words}" in str(refused.value)
    assert refused.value.returncode == 1
    assert made(preview) == before
    assert BillRun.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("action", "words"), [("post", "posted"), ("retry", "retried"), ("email", "emailed")]
)
def test_the_pages_refuse_to_post_retry_or_email_a_preview(client, superuser, action, words):
    book()
    preview = execute(MAR, preview=True)
    client.force_login(superuser)
    page = client.get(reverse("billruns:detail", args=[preview.number]))
    html = page.content.decode()
    assert 'data-testid="post-billrun"' not in html
    assert 'data-testid="retry-billrun"' not in html
    assert 'data-testid="preview-banner"' in html
    response = client.post(reverse(f"billruns:{action}", args=[preview.number]), follow=True)
    assert f"a preview is never {words}" in response.content.decode()
    preview.refresh_from_db()
    assert preview.status == RunStatus.COMPLETED
    assert BillRun.objects.count() == 1


@pytest.mark.django_db
def test_a_preview_is_deleted_in_any_status_but_processing_and_canceling_deletes_it():
    book()
    pending = services.bill_run_create(target_date=MAR, preview=True, enqueue=False)
    services.bill_run_cancel(run=pending, user=None)
    assert not BillRun.objects.filter(pk=pending.pk).exists()
    completed = execute(MAR, preview=True)
    services.bill_run_cancel(run=completed, user=None)
    assert not BillRun.objects.filter(pk=completed.pk).exists()
    assert not Document.all_objects.exists()
    again = execute(MAR, preview=True)
    services.bill_run_delete(run=again, user=None)
    assert not BillRun.objects.exists() and not DocumentItem.all_objects.exists()
    processing = services.bill_run_create(target_date=MAR, preview=True, enqueue=False)
    BillRun.objects.filter(pk=processing.pk).update(status=RunStatus.PROCESSING)
    with pytest.raises(services.BillRunActionRefused, match="Processing preview"):
        services.bill_run_delete(run=processing, user=None)
    # a pending preview deleted before its start task ran: the task does nothing
    late = services.bill_run_create(target_date=MAR, preview=True, enqueue=False)
    services.bill_run_delete(run=late, user=None)
    assert services.bill_run_start(run_id=late.pk) == []


@pytest.mark.django_db
def test_previews_older_than_seven_days_are_deleted_by_the_sweep():
    from django_q.models import Schedule

    book()
    old = execute(MAR, preview=True)
    young = execute(MAR, preview=True)
    real = execute(MAR)
    BillRun.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - datetime.timedelta(days=7, minutes=1)
    )
    BillRun.objects.filter(pk=real.pk).update(
        created_at=timezone.now() - datetime.timedelta(days=30)
    )
    assert services.previews_sweep() == 1
    assert set(BillRun.objects.values_list("pk", flat=True)) == {young.pk, real.pk}
    assert not Document.all_objects.filter(bill_run_id=old.pk).exists()
    assert Document.objects.filter(bill_run=real).count() == real.invoices_count
    assert services.previews_sweep() == 0  # idempotent
    # the task queue runs it (migration 0014_preview_runs)
    assert Schedule.objects.filter(func="billruns.tasks.sweep_previews").exists()


@pytest.mark.django_db
def test_a_preview_emails_nobody_its_owner_gets_a_notice(superuser):
    book()
    run = services.bill_run_create(target_date=MAR, preview=True, created_by=superuser)
    run = services.bill_run_execute(run_id=run.pk)
    assert RunNotification.objects.filter(bill_run=run, user=superuser).count() == 1
    assert not EmailDelivery.objects.filter(bill_run=run).exists()
    assert not BillRunFailure.objects.filter(bill_run=run).filter(reason="").exists()


# --- the pages --------------------------------------------------------------------


@pytest.mark.django_db
def test_the_form_previews_and_the_preview_creates_the_real_run(client, superuser):
    plan = book()
    client.force_login(superuser)
    form = client.get(reverse("billruns:new"))
    assert 'data-testid="preview-billrun"' in form.content.decode()
    key = form.context["form"].initial["request_key"]
    data = {
        "target_date": "2026-03-01",
        "invoice_date": "2026-03-05",
        "mode": "account",
        "account": plan.subscription.account.number,
        "bill_cycle_day": "all",
        "exclude_charge_types": ["usage"],
        "request_key": str(key),
    }
    response = client.post(reverse("billruns:new"), {**data, "preview": "1"})
    preview = BillRun.objects.get()
    assert response.status_code == 302 and preview.preview
    services.bill_run_execute(run_id=preview.pk)
    # the list and the page show the badge
    listing = client.get(reverse("billruns:list")).content.decode()
    assert listing.count('data-testid="preview-badge"') == 1
    page = client.get(reverse("billruns:detail", args=[preview.number])).content.decode()
    assert page.count('data-testid="preview-badge"') == 1
    assert 'data-testid="create-this-run"' in page
    review = client.get(reverse("billruns:detail", args=[preview.number]) + "?tab=review")
    assert review.status_code == 200
    # a preview with auto-post is refused on the form, nothing made
    fresh = {**data, "request_key": str(uuid.uuid4()), "preview": "1", "auto_post": "on"}
    refused = client.post(reverse("billruns:new"), fresh)
    assert refused.status_code == 400 and BillRun.objects.count() == 1
    # Create this run: the real run with the same parameters
    client.post(
        reverse("billruns:create_from_preview", args=[preview.number]),
        {"request_key": "k1"},
    )
    real = BillRun.objects.exclude(pk=preview.pk).get()
    assert not real.preview
    for field in ("target_date", "invoice_date", "account_id", "batches", "bill_cycle_days"):
        assert getattr(real, field) == getattr(preview, field)
    assert real.exclude_charge_types == ["usage"]
    services.bill_run_execute(run_id=real.pk)
    assert made(real)["documents"] == made(preview)["documents"]
    # the same form submitted again as the real run makes a run of its own
    client.post(reverse("billruns:new"), data)
    assert BillRun.objects.filter(preview=False).count() == 2


@pytest.mark.django_db
def test_a_schedules_page_previews_its_next_run(client, superuser):
    from billruns import schedules

    book()
    schedule = schedules.schedule_create(
        owner=superuser,
        name="Monthly",
        repeats="monthly",
        day_of_month=1,
        start_date=D(2026, 1, 1),
    )
    client.force_login(superuser)
    page = client.get(reverse("billruns:schedule_detail", args=[schedule.pk])).content.decode()
    assert 'data-testid="preview-next-run"' in page
    response = client.post(reverse("billruns:schedule_preview", args=[schedule.pk]))
    preview = BillRun.objects.get()
    assert response.status_code == 302 and preview.preview and not preview.auto_post
    assert preview.schedule_id is None  # (not one of the schedule's runs)
    schedule.refresh_from_db()
    assert schedule.events.filter(kind="fired").count() == 0


@pytest.mark.django_db
def test_a_paused_schedule_has_no_next_run_to_preview(client, superuser):
    from billruns import schedules

    schedule = schedules.schedule_create(
        owner=superuser, name="Monthly", repeats="monthly", day_of_month=1, start_date=FEB
    )
    schedules.schedule_pause(schedule=schedule, user=superuser)
    client.force_login(superuser)
    page = client.get(reverse("billruns:schedule_detail", args=[schedule.pk])).content.decode()
    assert 'data-testid="preview-next-run"' not in page
    response = client.post(reverse("billruns:schedule_preview", args=[schedule.pk]), follow=True)
    assert "has no next run to preview: it is paused" in response.content.decode()
    assert not BillRun.objects.exists()


@pytest.mark.django_db
def test_a_failing_preview_leaves_no_documents_and_a_real_run_is_no_preview(settings):
    settings.BILLRUN_CHUNK_SIZE = 1  # (the run is still Processing after its first chunk)
    book()
    preview = services.bill_run_create(target_date=MAR, preview=True, enqueue=False)
    for chunk_id in services.bill_run_start(run_id=preview.pk, enqueue_chunks=False):
        services.bill_run_process_chunk(chunk_id=chunk_id)
        break
    assert Document.all_objects.filter(bill_run=preview).exists()
    failed = services.bill_run_fail(run_id=preview.pk, message="stopped")
    assert failed.status == RunStatus.ERROR and failed.invoices_count == 0
    assert not Document.all_objects.filter(bill_run=preview).exists()
    real = execute(MAR)
    with pytest.raises(services.BillRunActionRefused, match="is not a preview"):
        services.bill_run_create_from_preview(preview=real, created_by=None)


@pytest.mark.django_db
def test_list_and_show_mark_a_preview():
    book()
    preview = execute(MAR, preview=True)
    execute(MAR)
    out = io.StringIO()
    call_command("billrun", "list", stdout=out)
    lines = out.getvalue().splitlines()
    assert [line.endswith("(preview)") for line in lines] == [False, True]
    out = io.StringIO()
    call_command("billrun", "show", preview.number, "--documents", stdout=out)
    assert "(preview)" in out.getvalue().splitlines()[0]
    assert "(no number)" in out.getvalue()
