"""A run created with enqueue=True runs on the task queue once its transaction
commits (test settings run django-q2 tasks synchronously); auto-post posts it
when it completes; ``bill_run_finished`` announces each run's end once, after
its auto-post."""

import contextlib
import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from billruns import generation, services
from billruns.models import BillRun, BillRunChunk, RunStatus
from billruns.services import execution, posting
from billruns.signals import bill_run_finished, bill_run_posted
from invoices.models import DocumentStatus, DocumentType, TenantSettings
from tests.factories import AccountFactory, ChargeFactory

JAN = datetime.date(2026, 1, 1)


@pytest.fixture
def announced():
    """(status, documents' statuses) of every run announced as finished, as
    it was at the moment of the announcement."""
    seen = []

    def receiver(sender, run, **kwargs):
        seen.append(
            (
                run.number,
                BillRun.objects.get(pk=run.pk).status,
                sorted(set(run.documents.values_list("status", flat=True))),
            )
        )

    bill_run_finished.connect(receiver, dispatch_uid="test_billrun_queue")
    yield seen
    bill_run_finished.disconnect(dispatch_uid="test_billrun_queue")


def create_and_commit(django_capture_on_commit_callbacks, **parameters):
    with django_capture_on_commit_callbacks(execute=True):
        run = services.bill_run_create(target_date=JAN, **parameters)
    run.refresh_from_db()
    return run


@pytest.mark.django_db
def test_a_queued_run_waits_for_its_transaction_to_commit(django_capture_on_commit_callbacks):
    # given
    ChargeFactory()
    # when
    with django_capture_on_commit_callbacks(execute=False) as queued:
        run = services.bill_run_create(target_date=JAN)
    # then
    run.refresh_from_db()
    assert run.status == RunStatus.PENDING
    assert len(queued) == 1
    assert not run.chunks.exists()


@pytest.mark.django_db
def test_a_queued_run_runs_to_completed_after_commit(settings, django_capture_on_commit_callbacks):
    # given
    settings.BILLRUN_CHUNK_SIZE = 2
    for _ in range(5):
        ChargeFactory()
    # when
    run = create_and_commit(django_capture_on_commit_callbacks)
    # then
    assert run.status == RunStatus.COMPLETED
    assert run.chunks.count() == 3
    assert set(run.chunks.values_list("status", flat=True)) == {"done"}
    assert (run.accounts_processed, run.invoices_count, run.totals) == (
        5,
        5,
        {"USD": "500.00"},
    )
    assert set(run.documents.values_list("status", flat=True)) == {DocumentStatus.DRAFT}


@pytest.mark.django_db
def test_a_queued_run_over_no_accounts_completes(django_capture_on_commit_callbacks, announced):
    # given / when
    run = create_and_commit(django_capture_on_commit_callbacks)
    # then
    assert run.status == RunStatus.COMPLETED
    assert [status for _, status, _ in announced] == [RunStatus.COMPLETED]


@pytest.mark.django_db
def test_an_auto_post_run_ends_posted_with_its_documents_posted(
    django_capture_on_commit_callbacks, clerk
):
    # given
    ChargeFactory()
    ChargeFactory(amount=Decimal("-20.00"))
    # when
    run = create_and_commit(django_capture_on_commit_callbacks, auto_post=True, created_by=clerk)
    # then
    assert run.status == RunStatus.POSTED
    assert run.posted_by == clerk
    assert set(run.documents.values_list("status", flat=True)) == {DocumentStatus.POSTED}
    assert run.events.get(to_status=RunStatus.POST_IN_PROGRESS).note == "auto-post"


@pytest.mark.django_db
def test_auto_post_with_advanced_ar_settlement_posts_credit_memos_too(
    django_capture_on_commit_callbacks,
):
    # given
    TenantSettings.objects.update_or_create(id=1, defaults={"advanced_ar_settlement": True})
    ChargeFactory()
    ChargeFactory(amount=Decimal("-20.00"))
    # when
    run = create_and_commit(django_capture_on_commit_callbacks, auto_post=True)
    # then
    assert run.status == RunStatus.POSTED
    assert sorted(run.documents.values_list("document_type", "status")) == [
        (DocumentType.CREDIT_MEMO, DocumentStatus.POSTED),
        (DocumentType.INVOICE, DocumentStatus.POSTED),
    ]


@pytest.mark.django_db
def test_an_auto_post_run_with_failures_posts_too(django_capture_on_commit_callbacks):
    # given
    ChargeFactory()
    AccountFactory(bill_to_email="")
    # when
    run = create_and_commit(django_capture_on_commit_callbacks, auto_post=True)
    # then
    assert (run.status, run.has_errors) == (RunStatus.POSTED, True)


@pytest.mark.django_db
def test_the_end_of_a_run_is_announced_once(django_capture_on_commit_callbacks, announced):
    # given
    ChargeFactory()
    # when
    run = create_and_commit(django_capture_on_commit_callbacks)
    services.bill_run_finish_if_done(run_id=run.pk)
    services.bill_runs_sweep(lease_seconds=0, pending_grace_seconds=0)
    # then
    assert announced == [(run.number, RunStatus.COMPLETED, [DocumentStatus.DRAFT])]


@pytest.mark.django_db
def test_the_end_of_an_auto_post_run_is_announced_once_after_posting(
    django_capture_on_commit_callbacks, announced
):
    # given
    ChargeFactory()
    # when
    run = create_and_commit(django_capture_on_commit_callbacks, auto_post=True)
    # then
    assert announced == [(run.number, RunStatus.POSTED, [DocumentStatus.POSTED])]


@pytest.mark.django_db
def test_an_auto_post_that_fails_leaves_the_run_completed_and_announces_that(
    django_capture_on_commit_callbacks, announced, monkeypatch
):
    # given
    ChargeFactory()

    def posting_fails(**kwargs):
        raise RuntimeError("ledger is read-only")

    monkeypatch.setattr(posting, "documents_post_for_run", posting_fails)
    # when
    run = create_and_commit(django_capture_on_commit_callbacks, auto_post=True)
    # then
    assert run.status == RunStatus.COMPLETED
    assert run.last_post_error == "ledger is read-only"
    assert announced == [(run.number, RunStatus.COMPLETED, [DocumentStatus.DRAFT])]


@pytest.mark.django_db
def test_the_end_of_a_run_in_error_is_announced_once(settings, monkeypatch, announced):
    # given
    settings.BILLRUN_CHUNK_SIZE = 1
    ChargeFactory()
    ChargeFactory()
    real = generation.process_chunk

    def second_chunk_fails(chunk_id, *, cluster=""):
        if BillRunChunk.objects.get(pk=chunk_id).index == 1:
            raise RuntimeError("disk full")
        return real(chunk_id, cluster=cluster)

    monkeypatch.setattr(generation, "process_chunk", second_chunk_fails)
    run = services.bill_run_create(target_date=JAN, enqueue=False)
    # when
    services.bill_run_execute(run_id=run.pk)
    services.bill_run_execute(run_id=run.pk)
    # then
    assert announced == [(run.number, RunStatus.ERROR, [DocumentStatus.CANCELED])]


@pytest.mark.django_db
def test_a_chunk_that_keeps_failing_on_the_queue_ends_the_run_in_error_via_the_sweeper(
    django_capture_on_commit_callbacks, monkeypatch, announced
):
    # given a run whose only chunk raises on every delivery
    ChargeFactory()

    def fails(chunk_id, *, cluster=""):
        raise RuntimeError("disk full")

    monkeypatch.setattr(generation, "process_chunk", fails)
    # (the synchronous queue of the tests raises what a task raises)
    with pytest.raises(RuntimeError, match="disk full"):
        create_and_commit(django_capture_on_commit_callbacks)
    run = BillRun.objects.get()
    assert run.status == RunStatus.PROCESSING
    # when the sweeper hands the chunk out again each time its lease expires
    for attempt in range(services.MAX_CHUNK_ATTEMPTS):
        BillRunChunk.objects.filter(bill_run=run).update(
            leased_at=timezone.now() - datetime.timedelta(hours=1)
        )
        if attempt < services.MAX_CHUNK_ATTEMPTS - 1:
            with pytest.raises(RuntimeError, match="disk full"):
                services.bill_runs_sweep(lease_seconds=60, pending_grace_seconds=60)
        else:
            services.bill_runs_sweep(lease_seconds=60, pending_grace_seconds=60)
    # then
    run.refresh_from_db()
    assert run.status == RunStatus.ERROR
    assert run.error_message == f"Chunk 1 failed {services.MAX_CHUNK_ATTEMPTS} times: disk full"
    assert [status for _, status, _ in announced] == [RunStatus.ERROR]


@pytest.mark.django_db
def test_a_selection_that_cannot_be_evaluated_on_the_queue_ends_the_run_in_error(
    django_capture_on_commit_callbacks, monkeypatch, announced
):
    # given
    def broken_selection(run):
        raise RuntimeError("relation customers_account is locked")

    monkeypatch.setattr(execution, "_selected_account_ids", broken_selection)
    # when (the synchronous queue of the tests raises what a task raises)
    with contextlib.suppress(RuntimeError):
        create_and_commit(django_capture_on_commit_callbacks)
    # then
    run = BillRun.objects.get()
    assert run.status == RunStatus.ERROR
    assert "The selection could not be evaluated" in run.error_message
    assert [status for _, status, _ in announced] == [RunStatus.ERROR]


@pytest.mark.django_db
def test_a_selection_that_cannot_be_evaluated_inline_ends_the_run_in_error(monkeypatch, announced):
    # given
    def broken_selection(run):
        raise RuntimeError("relation customers_account is locked")

    monkeypatch.setattr(execution, "_selected_account_ids", broken_selection)
    run = services.bill_run_create(target_date=JAN, enqueue=False)
    # when
    services.bill_run_execute(run_id=run.pk)
    # then
    run.refresh_from_db()
    assert run.status == RunStatus.ERROR
    assert run.error_message == (
        "The selection could not be evaluated: relation customers_account is locked"
    )
    assert [status for _, status, _ in announced] == [RunStatus.ERROR]


@pytest.mark.django_db
def test_posting_is_announced_inside_its_transaction(django_capture_on_commit_callbacks, clerk):
    # given
    ChargeFactory()
    run = create_and_commit(django_capture_on_commit_callbacks)
    posted = []
    bill_run_posted.connect(
        lambda sender, run, user, **kwargs: posted.append(
            (run.number, BillRun.objects.get(pk=run.pk).status, user)
        ),
        weak=False,
        dispatch_uid="test_posted",
    )
    try:
        # when
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            services.bill_run_post(run=run, user=clerk, wait=True)
            # then: announced before anything waiting for the commit ran
            assert posted == [(run.number, RunStatus.POSTED, clerk)]
        for callback in callbacks:
            callback()
    finally:
        bill_run_posted.disconnect(dispatch_uid="test_posted")
    assert posted == [(run.number, RunStatus.POSTED, clerk)]
