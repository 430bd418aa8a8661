"""A run's accounts are split into chunks; each chunk is one transaction that
either bills its accounts once and marks itself done, or leaves nothing. The
sweeper takes up what a dead worker left behind."""

import datetime

import pytest
from django.utils import timezone

from billruns import generation, selectors, services
from billruns.models import BillRunChunk, ChunkStatus, RunStatus
from customers.models import Charge
from invoices.models import Document, DocumentItem
from tests.factories import ChargeFactory

JAN = datetime.date(2026, 1, 1)
FEB = datetime.date(2026, 2, 1)
LONG_AGO = datetime.timedelta(hours=1)


@pytest.fixture
def ten_accounts(settings):
    settings.BILLRUN_CHUNK_SIZE = 3
    return [ChargeFactory(subscription__account__number=f"A{n:08d}") for n in range(1, 11)]


def started_run(target_date=JAN, **parameters):
    run = services.bill_run_create(target_date=target_date, enqueue=False, **parameters)
    chunk_ids = services.bill_run_start(run_id=run.pk, enqueue_chunks=False)
    return run, chunk_ids


def outcome(run):
    run.refresh_from_db()
    return {
        "documents": list(Document.objects.order_by("id").values_list("number", "amount")),
        "items": DocumentItem.objects.count(),
        "charges": list(Charge.objects.order_by("id").values_list("id", "charged_through_date")),
        "processed": run.accounts_processed,
        "chunks": list(run.chunks.values_list("index", "status")),
    }


@pytest.mark.django_db
def test_ten_accounts_in_chunks_of_three_make_four_chunks_in_account_order(ten_accounts):
    # given / when
    run, chunk_ids = started_run()
    # then
    chunks = list(BillRunChunk.objects.filter(bill_run=run).order_by("index"))
    assert [chunk.pk for chunk in chunks] == chunk_ids
    assert [chunk.index for chunk in chunks] == [0, 1, 2, 3]
    assert [chunk.account_count for chunk in chunks] == [3, 3, 3, 1]
    account_ids = [charge.subscription.account_id for charge in ten_accounts]
    assert [id_ for chunk in chunks for id_ in chunk.account_ids] == sorted(account_ids)
    assert {chunk.status for chunk in chunks} == {ChunkStatus.PENDING}
    run.refresh_from_db()
    assert (run.accounts_selected, run.accounts_processed) == (10, 0)


@pytest.mark.django_db
def test_a_run_over_no_accounts_makes_no_chunks_and_completes():
    # given / when
    run = services.bill_run_create(target_date=JAN, enqueue=False)
    run = services.bill_run_execute(run_id=run.pk)
    # then
    assert run.status == RunStatus.COMPLETED
    assert not run.chunks.exists()
    assert (run.accounts_selected, run.accounts_processed, run.invoices_count) == (0, 0, 0)


@pytest.mark.django_db
def test_each_chunk_done_advances_the_progress_by_its_accounts(ten_accounts):
    # given
    run, chunk_ids = started_run()
    progress = []
    # when
    for chunk_id in chunk_ids:
        services.bill_run_process_chunk(chunk_id=chunk_id)
        run.refresh_from_db()
        progress.append((selectors.run_progress(run), run.status))
    # then
    assert progress == [
        ((3, 10), RunStatus.PROCESSING),
        ((6, 10), RunStatus.PROCESSING),
        ((9, 10), RunStatus.PROCESSING),
        ((10, 10), RunStatus.COMPLETED),
    ]
    assert run.invoices_count == 10


@pytest.mark.django_db
def test_processing_a_chunk_twice_bills_it_once(ten_accounts):
    # given
    run, chunk_ids = started_run()
    assert services.bill_run_process_chunk(chunk_id=chunk_ids[0]) is True
    before = outcome(run)
    attempts = BillRunChunk.objects.get(pk=chunk_ids[0]).attempts
    # when
    done = services.bill_run_process_chunk(chunk_id=chunk_ids[0])
    # then
    assert done is False
    assert outcome(run) == before
    assert len(before["documents"]) == 3
    assert BillRunChunk.objects.get(pk=chunk_ids[0]).attempts == attempts


@pytest.mark.django_db
def test_processing_a_chunk_directly_twice_bills_it_once(ten_accounts):
    # given: a redelivered task reaching the generator itself
    run, chunk_ids = started_run()
    generation.process_chunk(chunk_ids[1])
    before = outcome(run)
    # when
    generation.process_chunk(chunk_ids[1])
    # then
    assert outcome(run) == before


@pytest.mark.django_db
def test_a_chunk_whose_transaction_dies_after_writing_documents_leaves_nothing(
    ten_accounts, monkeypatch
):
    # given
    run, chunk_ids = started_run()
    before = outcome(run)
    written = []
    real = generation.set_charged_through

    def dies_after_documents(pairs):
        written.append(Document.objects.filter(bill_run=run).count())
        real(pairs)
        raise RuntimeError("worker lost")

    monkeypatch.setattr(generation, "set_charged_through", dies_after_documents)
    # when
    with pytest.raises(RuntimeError):
        services.bill_run_process_chunk(chunk_id=chunk_ids[0])
    # then
    assert written == [3]
    assert outcome(run) == before
    chunk = BillRunChunk.objects.get(pk=chunk_ids[0])
    assert (chunk.status, chunk.attempts, chunk.last_error) == (
        ChunkStatus.PENDING,
        1,
        "worker lost",
    )


@pytest.mark.django_db
def test_redoing_a_chunk_whose_transaction_died_bills_it_exactly_once(ten_accounts, monkeypatch):
    # given
    run, chunk_ids = started_run()

    def dies(pairs):
        raise RuntimeError("worker lost")

    monkeypatch.setattr(generation, "set_charged_through", dies)
    with pytest.raises(RuntimeError):
        services.bill_run_process_chunk(chunk_id=chunk_ids[0])
    monkeypatch.undo()
    # when
    for chunk_id in chunk_ids:
        services.bill_run_process_chunk(chunk_id=chunk_id)
    # then
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert Document.objects.filter(bill_run=run).count() == 10
    assert DocumentItem.objects.count() == 10
    assert run.accounts_processed == 10
    assert set(Charge.objects.values_list("charged_through_date", flat=True)) == {FEB}
    assert BillRunChunk.objects.get(pk=chunk_ids[0]).attempts == 2


@pytest.mark.django_db
def test_a_chunk_of_a_run_that_is_no_longer_processing_writes_nothing(ten_accounts, clerk):
    # given
    run, chunk_ids = started_run()
    services.bill_run_fail(run_id=run.pk, message="stopped")
    before = outcome(run)
    # when
    done = services.bill_run_process_chunk(chunk_id=chunk_ids[0])
    # then
    assert done is False
    assert outcome(run) == before
    assert not Document.objects.exists()


# --- the sweeper -------------------------------------------------------------


def sweep():
    services.bill_runs_sweep(lease_seconds=600, pending_grace_seconds=120)


@pytest.mark.django_db
def test_the_sweeper_takes_up_a_chunk_whose_lease_expired(ten_accounts):
    # given a run whose worker processed two chunks and died with the third
    run, chunk_ids = started_run()
    for chunk_id in chunk_ids[:2]:
        services.bill_run_process_chunk(chunk_id=chunk_id)
    BillRunChunk.objects.filter(pk__in=chunk_ids[2:]).update(leased_at=timezone.now() - LONG_AGO)
    # when
    sweep()
    # then
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert (run.accounts_processed, run.invoices_count) == (10, 10)
    assert DocumentItem.objects.count() == 10


@pytest.mark.django_db
def test_the_sweeper_leaves_a_chunk_whose_lease_is_still_running(ten_accounts):
    # given
    run, chunk_ids = started_run()
    # when
    sweep()
    # then
    run.refresh_from_db()
    assert run.status == RunStatus.PROCESSING
    assert not Document.objects.exists()
    assert set(run.chunks.values_list("attempts", flat=True)) == {0}


@pytest.mark.django_db
def test_the_sweeper_completes_a_processing_run_whose_chunks_are_all_done(ten_accounts):
    # given chunks done by workers that died before completing the run
    run, chunk_ids = started_run()
    for chunk_id in chunk_ids:
        generation.process_chunk(chunk_id)
    run.refresh_from_db()
    assert run.status == RunStatus.PROCESSING
    # when
    sweep()
    # then
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert (run.accounts_processed, run.invoices_count, run.totals) == (
        10,
        10,
        {"USD": "1000.00"},
    )


@pytest.mark.django_db
def test_the_sweeper_starts_a_pending_run_whose_task_was_lost(
    ten_accounts, django_capture_on_commit_callbacks
):
    # given
    run = services.bill_run_create(target_date=JAN, enqueue=False)
    type(run).objects.filter(pk=run.pk).update(created_at=timezone.now() - LONG_AGO)
    # when
    with django_capture_on_commit_callbacks(execute=True):
        sweep()
    # then
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert run.invoices_count == 10


@pytest.mark.django_db
def test_the_sweeper_continues_a_posting_whose_worker_died(ten_accounts, clerk):
    # given
    run, chunk_ids = started_run()
    for chunk_id in chunk_ids:
        services.bill_run_process_chunk(chunk_id=chunk_id)
    services.bill_run_post(run=run, user=clerk, wait=False)
    type(run).objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - LONG_AGO)
    # when
    sweep()
    # then
    run.refresh_from_db()
    assert run.status == RunStatus.POSTED
    assert run.posted_by == clerk
    assert set(run.documents.values_list("status", flat=True)) == {"Posted"}


@pytest.mark.django_db
def test_the_sweeper_continues_a_cancel_whose_worker_died(ten_accounts, clerk):
    # given
    run, chunk_ids = started_run()
    for chunk_id in chunk_ids:
        services.bill_run_process_chunk(chunk_id=chunk_id)
    services.bill_run_cancel(run=run, user=clerk, wait=False)
    type(run).objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - LONG_AGO)
    # when
    sweep()
    # then
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELED
    assert run.canceled_by == clerk
    assert set(Charge.objects.values_list("charged_through_date", flat=True)) == {None}
