"""Cancel, delete, retry and Error (BILLING_RULES.md, "Bill run statuses" and
"Failures"): canceling undoes exactly what a run billed, so the same periods
bill again; a retry bills exactly the failed accounts; a run in Error leaves
nothing behind."""

import datetime
from decimal import Decimal

import pytest
from django.db import OperationalError

from billruns import generation, services
from billruns.models import BillRun, BillRunChunk, RunStatus
from billruns.services import MAX_CHUNK_ATTEMPTS, BillRunActionRefused, cancel
from customers.models import Charge
from invoices.models import Document, DocumentItem, DocumentStatus
from invoices.services import PostingRefused, document_post
from tests.factories import AccountFactory, ChargeFactory, OneTimeChargeFactory, SubscriptionFactory

JAN = datetime.date(2026, 1, 1)
FEB = datetime.date(2026, 2, 1)
MAR = datetime.date(2026, 3, 1)


def run_to_end(target_date, **parameters):
    run = services.bill_run_create(target_date=target_date, enqueue=False, **parameters)
    return services.bill_run_execute(run_id=run.pk)


def charged_through(*charges):
    return [Charge.objects.get(pk=charge.pk).charged_through_date for charge in charges]


def billed_items(run):
    """What a run billed, without its numbers: comparable across runs."""
    return sorted(
        (
            item.document.account.number,
            item.subscription.number,
            item.charge_name,
            item.service_start,
            item.service_end,
            item.amount,
        )
        for item in DocumentItem.objects.filter(document__bill_run=run).select_related(
            "document__account", "subscription"
        )
    )


def document_amounts(run):
    return sorted(
        Document.objects.filter(bill_run=run).values_list(
            "account__number", "document_type", "amount", "invoice_date", "due_date"
        )
    )


def state():
    """Everything a refused action must leave alone."""
    return {
        "runs": list(BillRun.objects.order_by("id").values_list("number", "status")),
        "documents": list(Document.objects.order_by("id").values_list("number", "status")),
        "items": list(DocumentItem.objects.order_by("id").values_list("id", "document_canceled")),
        "charges": list(Charge.objects.order_by("id").values_list("id", "charged_through_date")),
    }


# --- cancel ------------------------------------------------------------------


@pytest.mark.django_db
def test_canceling_a_completed_run_cancels_its_documents_and_restores_exact_dates(clerk):
    # given a charge billed before, a charge billed for the first time and a
    # one-time charge, all billed by the run
    billed_before = ChargeFactory(subscription__account__number="A00000001")
    run_to_end(JAN)
    new_account = AccountFactory(number="A00000002")
    first_billing = ChargeFactory(subscription__account=new_account, start_date=FEB)
    one_time = OneTimeChargeFactory(subscription=first_billing.subscription, start_date=FEB)
    run = run_to_end(FEB)
    assert charged_through(billed_before, first_billing, one_time) == [
        MAR,
        MAR,
        datetime.date(2026, 2, 2),
    ]
    # when
    services.bill_run_cancel(run=run, user=clerk)
    # then
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELED
    assert set(run.documents.values_list("status", flat=True)) == {DocumentStatus.CANCELED}
    assert run.documents.count() == 2
    assert all(d.canceled_by == clerk and d.canceled_at for d in run.documents.all())
    assert charged_through(billed_before, first_billing, one_time) == [FEB, None, None]
    assert (run.invoices_count, run.credit_memos_count, run.totals) == (0, 0, {})


@pytest.mark.django_db
def test_after_a_cancel_the_same_periods_bill_again_with_the_same_amounts_and_new_numbers(clerk):
    # given
    ChargeFactory(subscription__account__number="A00000001", amount=Decimal("100.00"))
    ChargeFactory(
        subscription__account__number="A00000002",
        subscription__account__bill_cycle_day=15,
        amount=Decimal("33.33"),
    )
    OneTimeChargeFactory(subscription__account__number="A00000003")
    first = run_to_end(FEB, invoice_date="2026-02-03")
    items, amounts = billed_items(first), document_amounts(first)
    numbers = set(first.documents.values_list("number", flat=True))
    services.bill_run_cancel(run=first, user=clerk)
    # when
    again = run_to_end(FEB, invoice_date="2026-02-03")
    # then
    assert billed_items(again) == items
    assert document_amounts(again) == amounts
    assert len(items) == 5
    assert not numbers & set(again.documents.values_list("number", flat=True))
    assert again.totals == first.totals


@pytest.mark.django_db
def test_canceling_a_run_whose_charges_a_later_run_billed_again_is_refused(clerk):
    # given
    charge = ChargeFactory()
    earlier = run_to_end(JAN)
    later = run_to_end(FEB)
    before = state()
    # when
    with pytest.raises(BillRunActionRefused) as refused:
        services.bill_run_cancel(run=earlier, user=clerk)
    # then
    assert str(refused.value) == (
        f"{earlier.number} cannot be canceled: {later.number} has billed its charges again "
        f"since. Cancel {later.number} first."
    )
    assert state() == before
    assert charged_through(charge) == [MAR]


@pytest.mark.django_db
def test_canceling_the_later_run_first_allows_canceling_the_earlier_one(clerk):
    # given
    charge = ChargeFactory()
    earlier = run_to_end(JAN)
    later = run_to_end(FEB)
    services.bill_run_cancel(run=later, user=clerk)
    assert charged_through(charge) == [FEB]
    # when
    services.bill_run_cancel(run=earlier, user=clerk)
    # then
    earlier.refresh_from_db()
    assert earlier.status == RunStatus.CANCELED
    assert charged_through(charge) == [None]


@pytest.mark.django_db
def test_a_later_run_over_other_charges_does_not_block_a_cancel(clerk):
    # given
    charge = ChargeFactory(subscription__account__number="A00000001")
    earlier = run_to_end(JAN)
    ChargeFactory(subscription__account__number="A00000002", start_date=FEB)
    run_to_end(FEB, account="A00000002")
    # when
    services.bill_run_cancel(run=earlier, user=clerk)
    # then
    earlier.refresh_from_db()
    assert earlier.status == RunStatus.CANCELED
    assert charged_through(charge) == [None]


@pytest.mark.django_db
def test_canceling_a_run_with_a_posted_document_is_refused(clerk):
    # given
    ChargeFactory(subscription__account__number="A00000001")
    ChargeFactory(subscription__account__number="A00000002")
    run = run_to_end(JAN)
    document_post(document_id=run.documents.order_by("id").first().pk, user=clerk)
    before = state()
    # when
    with pytest.raises(BillRunActionRefused) as refused:
        services.bill_run_cancel(run=run, user=clerk)
    # then
    assert str(refused.value) == (
        f"{run.number} has posted documents; a run with posted documents cannot be canceled."
    )
    assert state() == before
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED


@pytest.mark.django_db
def test_canceling_a_pending_run_generates_nothing_and_its_accounts_bill_later(clerk):
    # given
    charge = ChargeFactory()
    pending = services.bill_run_create(target_date=JAN, enqueue=False)
    # when
    services.bill_run_cancel(run=pending, user=clerk)
    # then
    pending.refresh_from_db()
    assert pending.status == RunStatus.CANCELED
    assert not Document.objects.exists()
    assert charged_through(charge) == [None]
    assert run_to_end(JAN).invoices_count == 1


@pytest.mark.django_db
def test_canceling_twice_is_refused_the_second_time_and_rolls_back_once(clerk):
    # given
    charge = ChargeFactory()
    run_to_end(JAN)
    run = run_to_end(FEB)
    services.bill_run_cancel(run=run, user=clerk)
    before = state()
    # when
    with pytest.raises(BillRunActionRefused) as refused:
        services.bill_run_cancel(run=run, user=clerk)
    # then
    assert f"{run.number} is Canceled" in str(refused.value)
    assert state() == before
    assert charged_through(charge) == [FEB]


@pytest.mark.django_db
def test_a_cancel_taken_up_again_after_a_dead_worker_rolls_back_once(clerk):
    # given a cancel whose worker died after the status change
    charge = ChargeFactory()
    run_to_end(JAN)
    run = run_to_end(FEB)
    services.bill_run_cancel(run=run, user=clerk, wait=False)
    # when it is continued twice (the sweeper and a redelivered task)
    services.bill_run_continue_canceling(run_id=run.pk, user=clerk)
    services.bill_run_continue_canceling(run_id=run.pk, user=clerk)
    # then
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELED
    assert charged_through(charge) == [FEB]
    assert run.events.filter(to_status=RunStatus.CANCELED).count() == 1


# --- delete ------------------------------------------------------------------


@pytest.mark.django_db
def test_deleting_a_canceled_run_removes_it_and_its_documents(clerk):
    # given
    charge = ChargeFactory()
    run = run_to_end(JAN)
    services.bill_run_cancel(run=run, user=clerk)
    # when
    services.bill_run_delete(run=run, user=clerk)
    # then
    assert not BillRun.objects.filter(pk=run.pk).exists()
    assert not Document.objects.exists()
    assert not DocumentItem.objects.exists()
    assert charged_through(charge) == [None]
    assert run_to_end(JAN).invoices_count == 1


@pytest.mark.django_db
def test_deleting_a_completed_run_is_refused(clerk):
    # given
    ChargeFactory()
    run = run_to_end(JAN)
    before = state()
    # when
    with pytest.raises(BillRunActionRefused):
        services.bill_run_delete(run=run, user=clerk)
    # then
    assert state() == before


# --- retry -------------------------------------------------------------------


@pytest.mark.django_db
def test_a_retry_bills_exactly_the_failed_accounts_with_the_same_dates_and_auto_post(clerk):
    # given one account billed and two that failed
    ChargeFactory(subscription__account__number="A00000001")
    no_contact = AccountFactory(number="A00000002", bill_to_email="")
    ChargeFactory(subscription__account=no_contact)
    foreign = ChargeFactory(subscription__account__number="A00000003", currency="EUR")
    run = run_to_end(JAN, invoice_date="2026-01-05", auto_post=True, created_by=clerk)
    assert run.status == RunStatus.POSTED and run.accounts_failed == 2
    no_contact.bill_to_email = "ap@example.com"
    no_contact.save()
    Charge.objects.filter(pk=foreign.pk).update(currency="USD")
    # when
    retry = services.bill_run_retry(run=run, user=clerk, wait=True)
    # then
    retry.refresh_from_db()
    assert retry.retry_of == run
    assert (retry.target_date, retry.invoice_date) == (JAN, datetime.date(2026, 1, 5))
    assert retry.auto_post is True
    assert retry.status == RunStatus.POSTED
    assert retry.created_by == clerk
    assert retry.accounts_processed == 2 and not retry.has_errors
    assert sorted(retry.documents.values_list("account__number", "status")) == [
        ("A00000002", DocumentStatus.POSTED),
        ("A00000003", DocumentStatus.POSTED),
    ]
    assert retry.events.first().note == f"Retry of {run.number}"
    # the command and the admin say what it billed, not "All batches"
    assert retry.selection_label == f"Retry of {run.number}: 2 failed accounts"


@pytest.mark.django_db
def test_a_retry_bills_whole_accounts_with_all_their_subscriptions(clerk):
    # given a run over one subscription of an account, which failed
    account = AccountFactory(number="A00000001")
    failing = SubscriptionFactory(number="S00000001", account=account)
    other = SubscriptionFactory(number="S00000002", account=account)
    foreign = ChargeFactory(subscription=failing, currency="EUR")
    ChargeFactory(subscription=other)
    run = run_to_end(JAN, account=account, subscriptions=[failing])
    assert run.accounts_failed == 1
    Charge.objects.filter(pk=foreign.pk).update(currency="USD")
    # when
    retry = services.bill_run_retry(run=run, user=clerk, wait=True)
    # then
    assert {item[1] for item in billed_items(retry)} == {"S00000001", "S00000002"}


@pytest.mark.django_db
def test_a_retry_keeps_the_charge_types_its_run_excluded(clerk):
    # given a run without usage in which an account failed
    subscription = SubscriptionFactory(account__number="A00000001", account__bill_to_email="")
    ChargeFactory(subscription=subscription, name="Plan")
    setup = OneTimeChargeFactory(subscription=subscription, name="Setup fee")
    run = run_to_end(JAN, exclude_charge_types=["one_time", "usage"])
    assert run.accounts_failed == 1
    account = subscription.account
    account.bill_to_email = "ap@example.com"
    account.save()
    # when
    retry = services.bill_run_retry(run=run, user=clerk, wait=True)
    # then
    assert retry.exclude_charge_types == ["one_time", "usage"]
    assert {item[2] for item in billed_items(retry)} == {"Plan"}
    assert charged_through(setup) == [None]


@pytest.mark.django_db
def test_an_account_that_still_fails_fails_again_in_the_retry(clerk):
    # given
    AccountFactory(number="A00000001", bill_to_email="")
    run = run_to_end(JAN)
    # when
    retry = services.bill_run_retry(run=run, user=clerk, wait=True)
    # then
    assert retry.status == RunStatus.COMPLETED and retry.has_errors
    assert list(retry.failures.values_list("account__number", "reason")) == [
        ("A00000001", "Bill-to contact is missing")
    ]


@pytest.mark.django_db
def test_a_retry_without_wait_is_queued_and_pending(clerk, django_capture_on_commit_callbacks):
    # given
    AccountFactory(bill_to_email="")
    run = run_to_end(JAN)
    # when
    with django_capture_on_commit_callbacks(execute=False) as queued:
        retry = services.bill_run_retry(run=run, user=clerk)
    # then
    assert retry.status == RunStatus.PENDING
    assert retry.retry_of == run
    assert len(queued) == 1


@pytest.mark.django_db
def test_retrying_a_run_without_failures_is_refused(clerk):
    # given
    ChargeFactory()
    run = run_to_end(JAN)
    # when
    with pytest.raises(BillRunActionRefused) as refused:
        services.bill_run_retry(run=run, user=clerk)
    # then
    assert (
        str(refused.value)
        == f"{run.number} is {run.get_status_display()} and has no failed accounts to retry."
    )
    assert BillRun.objects.count() == 1


@pytest.mark.django_db
def test_retrying_a_pending_run_is_refused(clerk):
    # given
    run = services.bill_run_create(target_date=JAN, enqueue=False)
    # when
    with pytest.raises(BillRunActionRefused) as refused:
        services.bill_run_retry(run=run, user=clerk)
    # then
    assert f"{run.number} is Pending" in str(refused.value)
    assert BillRun.objects.count() == 1


@pytest.mark.django_db
def test_retrying_a_canceled_run_is_refused_even_with_failures(clerk):
    # given
    AccountFactory(bill_to_email="")
    run = run_to_end(JAN)
    services.bill_run_cancel(run=run, user=clerk)
    run.refresh_from_db()
    # when
    with pytest.raises(BillRunActionRefused) as refused:
        services.bill_run_retry(run=run, user=clerk)
    # then
    assert f"{run.number} is Canceled" in str(refused.value)
    assert BillRun.objects.count() == 1


# --- Error -------------------------------------------------------------------


@pytest.fixture
def second_chunk_fails(settings, monkeypatch):
    """Chunks of 2 accounts; the second chunk raises a database error on every attempt."""
    settings.BILLRUN_CHUNK_SIZE = 2
    real = generation.process_chunk
    attempts = []

    def process_chunk(chunk_id, *, cluster=""):
        if BillRunChunk.objects.get(pk=chunk_id).index == 1:
            attempts.append(chunk_id)
            raise OperationalError("server closed the connection unexpectedly")
        return real(chunk_id, cluster=cluster)

    monkeypatch.setattr(generation, "process_chunk", process_chunk)
    return attempts


@pytest.mark.django_db
def test_a_chunk_failing_past_its_attempts_puts_the_run_in_error_and_undoes_it(
    second_chunk_fails, monkeypatch
):
    # given four accounts in two chunks, one already billed once before
    charges = [ChargeFactory(subscription__account__number=f"A0000000{n}") for n in (1, 2, 3, 4)]
    one_time = OneTimeChargeFactory(subscription=charges[0].subscription)
    Charge.objects.filter(pk=charges[1].pk).update(charged_through_date=FEB)
    # when
    run = run_to_end(FEB)
    # then
    run.refresh_from_db()
    assert run.status == RunStatus.ERROR
    assert len(second_chunk_fails) == MAX_CHUNK_ATTEMPTS
    assert run.error_message == (
        f"Chunk 2 failed {MAX_CHUNK_ATTEMPTS} times: server closed the connection unexpectedly"
    )
    assert run.documents.count() == 2
    assert set(run.documents.values_list("status", flat=True)) == {DocumentStatus.CANCELED}
    assert not DocumentItem.objects.filter(document_canceled=False).exists()
    assert charged_through(*charges, one_time) == [None, FEB, None, None, None]
    assert (run.invoices_count, run.totals) == (0, {})


@pytest.mark.django_db
def test_the_accounts_of_a_run_in_error_bill_in_a_later_run(second_chunk_fails, monkeypatch):
    # given
    for n in (1, 2, 3, 4):
        ChargeFactory(subscription__account__number=f"A0000000{n}")
    failed = run_to_end(JAN)
    assert BillRun.objects.get(pk=failed.pk).status == RunStatus.ERROR
    monkeypatch.undo()
    # when
    later = run_to_end(JAN)
    # then
    assert later.status == RunStatus.COMPLETED
    assert later.invoices_count == 4
    assert later.totals == {"USD": "400.00"}


@pytest.mark.django_db
def test_a_run_in_error_can_be_deleted_with_its_canceled_documents(second_chunk_fails, clerk):
    # given
    for n in (1, 2, 3):
        ChargeFactory(subscription__account__number=f"A0000000{n}")
    run = run_to_end(JAN)
    # when
    services.bill_run_delete(run=run, user=clerk)
    # then
    assert not BillRun.objects.exists()
    assert not Document.objects.exists()


# --- runs that interleave ----------------------------------------------------


def a_run_that_billed_x_and_is_still_processing(settings):
    """Run A (target January) over accounts X and Y, one chunk each, with
    only X's chunk done: returns A, Y's chunk and X's charge."""
    settings.BILLRUN_CHUNK_SIZE = 1
    charge = ChargeFactory(subscription__account__number="A00000001")
    ChargeFactory(subscription__account__number="A00000002")
    earlier = services.bill_run_create(target_date=JAN, enqueue=False)
    first_chunk, second_chunk = services.bill_run_start(run_id=earlier.pk, enqueue_chunks=False)
    services.bill_run_process_chunk(chunk_id=first_chunk)
    return earlier, second_chunk, charge


@pytest.mark.django_db
def test_an_account_billed_by_another_run_still_processing_fails_with_the_reason(settings, clerk):
    """Run A (target January) bills account X in its first chunk; run B
    (target February, account X only) reaches X while A is still processing:
    B must not bill X's next period, because A may yet end in Error and roll
    X's charge back under it."""
    # given
    earlier, second_chunk, charge = a_run_that_billed_x_and_is_still_processing(settings)
    # when
    later = run_to_end(FEB, account="A00000001")
    # then
    assert later.status == RunStatus.COMPLETED
    assert (later.accounts_failed, later.invoices_count) == (1, 0)
    assert list(later.failures.values_list("account__number", "reason")) == [
        (
            "A00000001",
            f"Account is being billed by {earlier.number}, which is still processing; "
            "retry once that run has completed",
        )
    ]
    assert charged_through(charge) == [FEB]
    # and once the earlier run has completed, the retry bills the next period
    services.bill_run_process_chunk(chunk_id=second_chunk)
    assert BillRun.objects.get(pk=earlier.pk).status == RunStatus.COMPLETED
    retry = services.bill_run_retry(run=later, user=clerk, wait=True)
    assert retry.invoices_count == 1
    assert charged_through(charge) == [MAR]


@pytest.mark.django_db
def test_a_run_in_error_after_an_overlapping_run_leaves_every_charge_consistent(settings, clerk):
    """The case the rule above exists for: the earlier run ends in Error
    after the later one reached the same account."""
    # given: A bills X in its first chunk, B reaches X, then A's second chunk fails for good
    earlier, _, charge = a_run_that_billed_x_and_is_still_processing(settings)
    later = run_to_end(FEB, account="A00000001")
    # when
    services.bill_run_fail(run_id=earlier.pk, message="chunk 2 failed")
    # then: nothing is live for X, its charge is back where it started, and it bills again
    assert not DocumentItem.objects.filter(charge=charge, document_canceled=False).exists()
    assert charged_through(charge) == [None]
    retry = services.bill_run_retry(run=later, user=clerk, wait=True)
    assert (retry.accounts_failed, retry.invoices_count) == (0, 1)
    assert charged_through(charge) == [MAR]


# --- a run's documents while it generates or is being canceled -----------------


@pytest.mark.django_db
def test_a_document_of_a_run_still_processing_cannot_be_posted(settings, clerk):
    # given a run with one of its two chunks done: a Draft exists, the run may yet fail
    settings.BILLRUN_CHUNK_SIZE = 1
    for n in (1, 2):
        ChargeFactory(subscription__account__number=f"A0000000{n}")
    run = services.bill_run_create(target_date=JAN, enqueue=False)
    first, _ = services.bill_run_start(run_id=run.pk, enqueue_chunks=False)
    services.bill_run_process_chunk(chunk_id=first)
    draft = Document.objects.get(bill_run=run)
    # when / then
    with pytest.raises(PostingRefused, match=f"{run.number}, which is Processing"):
        document_post(document_id=draft.pk, user=clerk)
    draft.refresh_from_db()
    assert draft.status == DocumentStatus.DRAFT
    # and when the run then fails, nothing it made stays
    services.bill_run_fail(run_id=run.pk, message="chunk 2 failed")
    assert set(run.documents.values_list("status", flat=True)) == {DocumentStatus.CANCELED}
    services.bill_run_delete(run=run, user=clerk)
    assert not Document.objects.exists()


@pytest.mark.django_db
def test_a_document_of_a_run_being_canceled_cannot_be_posted(clerk):
    # given a cancel that is queued, not done
    ChargeFactory()
    run = run_to_end(JAN)
    services.bill_run_cancel(run=run, user=clerk, wait=False)
    draft = Document.objects.get(bill_run=run)
    # when / then
    with pytest.raises(PostingRefused, match="which is Cancel in progress"):
        document_post(document_id=draft.pk, user=clerk)
    # and the cancel ends with every document canceled
    run = services.bill_run_continue_canceling(run_id=run.pk, user=clerk)
    assert run.status == RunStatus.CANCELED
    assert Document.objects.get(pk=draft.pk).status == DocumentStatus.CANCELED


@pytest.mark.django_db
def test_a_run_holding_a_document_that_is_not_canceled_is_never_deleted(clerk):
    # given a Canceled run with a Posted document (only a bug elsewhere could make one)
    ChargeFactory()
    run = run_to_end(JAN)
    services.bill_run_cancel(run=run, user=clerk)
    document = run.documents.get()
    Document.objects.filter(pk=document.pk).update(status=DocumentStatus.POSTED)
    before = state()
    # when / then
    with pytest.raises(BillRunActionRefused, match=f"its document {document.number} is Posted"):
        services.bill_run_delete(run=run, user=clerk)
    assert state() == before


@pytest.mark.django_db
def test_a_queued_cancel_stops_when_a_later_run_billed_the_charges_meanwhile(client, clerk):
    # given a cancel queued, then a later run billing the next period before it is done
    charge = ChargeFactory()
    first = run_to_end(JAN)
    services.bill_run_cancel(run=first, user=clerk, wait=False)
    later = run_to_end(FEB)
    assert later.invoices_count == 1
    before = state()
    # when the cancel is done
    first = services.bill_run_continue_canceling(run_id=first.pk, user=clerk)
    # then it stops: the run is Completed again, nothing canceled, no charge rolled back
    assert first.status == RunStatus.COMPLETED
    after = state()
    assert after["documents"] == before["documents"]
    assert after["charges"] == before["charges"] == [(charge.pk, MAR)]
    note = first.events.order_by("-id").first().note
    assert note == (
        f"Cancel stopped: {first.number} cannot be canceled: {later.number} has billed its "
        f"charges again since. Cancel {later.number} first."
    )
    # and the run's page says so
    client.force_login(clerk)
    page = client.get(f"/billing/bill-runs/{first.number}/").content.decode()
    assert 'data-testid="cancel-stopped"' in page and f"Cancel {later.number} first." in page
    # and canceling in the right order works
    services.bill_run_cancel(run=later, user=clerk)
    assert services.bill_run_cancel(run=first, user=clerk).status == RunStatus.CANCELED
    assert charged_through(charge) == [None]


@pytest.mark.django_db
def test_a_cancel_that_waits_and_is_stopped_is_refused_with_the_reason(clerk, monkeypatch):
    # given a later run that bills the charge between the cancel's request and its work
    charge = ChargeFactory()
    first = run_to_end(JAN)
    real = services.bill_run_continue_canceling

    later = []

    def later_run_sneaks_in(*, run_id, user):
        later.append(run_to_end(FEB))
        return real(run_id=run_id, user=user)

    monkeypatch.setattr(cancel, "bill_run_continue_canceling", later_run_sneaks_in)
    # when / then
    with pytest.raises(BillRunActionRefused) as refused:
        services.bill_run_cancel(run=first, user=clerk)
    assert str(refused.value).startswith(f"Cancel stopped: {first.number} cannot be canceled")
    assert str(refused.value).endswith(f"Cancel {later[0].number} first.")
    assert BillRun.objects.get(pk=first.pk).status == RunStatus.COMPLETED
    assert charged_through(charge) == [MAR]


# --- one live retry ----------------------------------------------------------------


@pytest.mark.django_db
def test_a_run_is_retried_once_until_its_retry_is_canceled(clerk):
    # given a run with a failed account
    ChargeFactory(subscription__account=AccountFactory(bill_to_email=""))
    run = run_to_end(JAN)
    retry = services.bill_run_retry(run=run, user=clerk)
    before = state()
    # when / then: a second retry is refused and names the first
    with pytest.raises(BillRunActionRefused) as refused:
        services.bill_run_retry(run=run, user=clerk)
    assert str(refused.value) == (
        f"{run.number} is already retried by {retry.number} (Pending): retry {retry.number} "
        f"instead, or cancel it to retry {run.number} again."
    )
    assert state() == before
    # and once that retry is canceled, the run can be retried again
    services.bill_run_cancel(run=retry, user=clerk)
    assert services.bill_run_retry(run=run, user=clerk).retry_of == run


@pytest.mark.django_db
def test_the_database_holds_one_live_retry_per_run(clerk):
    from django.db import IntegrityError, transaction

    ChargeFactory(subscription__account=AccountFactory(bill_to_email=""))
    run = run_to_end(JAN)
    services.bill_run_retry(run=run, user=clerk)
    with pytest.raises(IntegrityError), transaction.atomic():
        BillRun.objects.create(
            number="BR-99999999", target_date=JAN, invoice_date=JAN, retry_of=run
        )
    BillRun.objects.create(
        number="BR-99999998", target_date=JAN, invoice_date=JAN, retry_of=run, status="Canceled"
    )
