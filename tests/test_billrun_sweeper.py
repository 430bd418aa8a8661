"""The sweeper finishes what a dead worker left: auto-posts and announcements."""

import datetime
import time

import pytest
from django.utils import timezone

from billruns import generation, services
from billruns.models import BillRun, BillRunChunk, RunStatus
from billruns.services import execution, posting, sweeper
from billruns.signals import bill_run_finished
from tests.factories import ChargeFactory

JAN = datetime.date(2026, 1, 1)


@pytest.fixture
def announced():
    seen = []

    def receiver(sender, run, **kwargs):
        seen.append((run.number, BillRun.objects.get(pk=run.pk).status))

    bill_run_finished.connect(receiver, dispatch_uid="test_billrun_sweeper")
    yield seen
    bill_run_finished.disconnect(dispatch_uid="test_billrun_sweeper")


def sweep():
    services.bill_runs_sweep(lease_seconds=60, pending_grace_seconds=60)


def age(run, minutes):
    BillRun.objects.filter(pk=run.pk).update(
        completed_at=timezone.now() - datetime.timedelta(minutes=minutes)
    )


@pytest.mark.django_db
def test_a_completed_run_whose_announcement_was_lost_is_announced_once(announced, monkeypatch):
    # given a run whose worker died between completing and announcing
    ChargeFactory()
    monkeypatch.setattr(execution, "_announce", lambda run: run)
    run = services.bill_run_execute(
        run_id=services.bill_run_create(target_date=JAN, enqueue=False).pk
    )
    monkeypatch.undo()
    age(run, 5)
    # when the sweeper runs twice
    sweep()
    sweep()
    # then the run was announced once
    assert announced == [(run.number, RunStatus.COMPLETED)]


@pytest.mark.django_db
def test_a_recent_run_is_left_to_its_own_worker(announced, monkeypatch):
    ChargeFactory()
    monkeypatch.setattr(execution, "_announce", lambda run: run)
    services.bill_run_execute(run_id=services.bill_run_create(target_date=JAN, enqueue=False).pk)
    monkeypatch.undo()
    sweep()
    assert announced == []


@pytest.mark.django_db
def test_an_auto_post_run_whose_worker_died_before_posting_is_posted_then_announced(
    announced, monkeypatch
):
    # given an auto-post run that completed but was never posted
    ChargeFactory()
    monkeypatch.setattr(execution, "_auto_post", lambda run: run)
    monkeypatch.setattr(execution, "_announce", lambda run: run)
    run = services.bill_run_create(target_date=JAN, auto_post=True, enqueue=False)
    run = services.bill_run_execute(run_id=run.pk)
    monkeypatch.undo()
    assert BillRun.objects.get(pk=run.pk).status == RunStatus.COMPLETED
    age(run, 5)
    # when
    sweep()
    # then it is posted, and announced after the posting
    assert BillRun.objects.get(pk=run.pk).status == RunStatus.POSTED
    assert announced == [(run.number, RunStatus.POSTED)]


# --- leases: a dead worker's step is taken up quickly, a live one never twice ---


def test_the_default_leases_take_up_a_dead_workers_chunk_within_a_minute():
    # A dead worker's last heartbeat is at most one lease old when it is
    # noticed, and a sweep comes at most one sweep interval later.
    from django.conf import settings
    from django_q.signals import post_spawn

    from billruns import leases

    assert settings.BILLRUN_LEASE_SECONDS + settings.BILLRUN_SWEEP_SECONDS <= 45
    # several beats per lease: one late beat (a busy host) loses nothing
    assert settings.BILLRUN_HEARTBEAT_SECONDS * 3 <= settings.BILLRUN_LEASE_SECONDS
    assert 0 < settings.BILLRUN_SWEEP_SECONDS <= 15
    # the queue never hands a task still running to a second worker
    assert settings.Q_CLUSTER["retry"] > settings.Q_CLUSTER["timeout"]
    # and every worker process sweeps
    assert leases.start_sweeper in [ref() for _, ref, *_ in post_spawn.receivers]


@pytest.fixture
def queued(monkeypatch):
    """The tasks the sweeper queues, instead of queueing them."""
    tasks = []
    monkeypatch.setattr(sweeper, "async_task", lambda func, *args, **kw: tasks.append((func, args)))
    return tasks


def chunk_tasks(queued):
    return [args[0] for func, args in queued if func.endswith("process_bill_run_chunk")]


def started(chunks=3, queued_ago=datetime.timedelta(minutes=5)):
    for _ in range(chunks):
        ChargeFactory()
    run = services.bill_run_create(target_date=JAN, enqueue=False)
    from django.test import override_settings

    with override_settings(BILLRUN_CHUNK_SIZE=1):
        chunk_ids = services.bill_run_start(run_id=run.pk, enqueue_chunks=False)
    BillRunChunk.objects.update(leased_at=timezone.now() - queued_ago)
    return run, chunk_ids


def taken(chunk_id, heartbeat_ago):
    BillRunChunk.objects.filter(pk=chunk_id).update(
        holder="host-a:1/x", attempts=1, heartbeat_at=timezone.now() - heartbeat_ago
    )


def sweep_leases():
    services.bill_runs_sweep_leases(lease_seconds=30)


@pytest.mark.django_db
def test_a_chunk_whose_worker_stopped_its_heartbeat_is_queued_again_once_the_lease_runs_out(
    queued,
):
    # given a chunk taken by a worker whose last heartbeat was 20 s ago
    run, chunk_ids = started(chunks=1)
    taken(chunk_ids[0], datetime.timedelta(seconds=20))
    # when the sweeper looks within the lease
    sweep_leases()
    # then it leaves the chunk to its worker
    assert chunk_tasks(queued) == []
    # and when the heartbeat is older than the lease (the worker died)
    taken(chunk_ids[0], datetime.timedelta(seconds=31))
    sweep_leases()
    sweep_leases()
    # then it is queued again, once
    assert chunk_tasks(queued) == chunk_ids


@pytest.mark.django_db
def test_a_delivery_of_a_chunk_a_live_worker_holds_leaves_it_to_that_worker(monkeypatch):
    # given a chunk another worker took and still renews
    run, chunk_ids = started(chunks=1)
    taken(chunk_ids[0], datetime.timedelta(seconds=2))
    monkeypatch.setattr(generation, "process_chunk", lambda *a, **k: pytest.fail("worked twice"))
    # when the chunk is delivered again
    done = services.bill_run_process_chunk(chunk_id=chunk_ids[0])
    # then
    assert done is False
    assert BillRunChunk.objects.get().attempts == 1


@pytest.mark.django_db
def test_a_chunk_never_taken_is_queued_again_once_the_queue_has_passed_it(queued):
    # given three chunks queued 5 minutes ago: a host died with the first
    # two among the tasks it had taken ahead, and the third is done
    run, chunk_ids = started(chunks=3)
    taken(chunk_ids[0], datetime.timedelta(seconds=5))  # still being worked on
    services.bill_run_process_chunk(chunk_id=chunk_ids[2])
    # when
    sweep_leases()
    # then the second, which the queue passed by, is queued again; the first is left alone
    assert chunk_tasks(queued) == [chunk_ids[1]]


@pytest.mark.django_db
def test_chunks_waiting_behind_a_busy_queue_are_not_queued_again(queued):
    # given a run whose chunks wait in the queue while a worker is busy with the first
    run, chunk_ids = started(chunks=3)
    taken(chunk_ids[0], datetime.timedelta(seconds=5))
    # when
    sweep_leases()
    # then
    assert chunk_tasks(queued) == []
    # and once no worker has worked on any chunk for a whole lease, they are
    taken(chunk_ids[0], datetime.timedelta(seconds=40))
    sweep_leases()
    assert sorted(chunk_tasks(queued)) == chunk_ids


@pytest.mark.django_db
def test_a_chunk_let_go_after_a_failed_attempt_is_queued_again(queued, monkeypatch):
    # given
    run, chunk_ids = started(chunks=1)

    def fails(chunk_id, *, cluster=""):
        raise RuntimeError("connection reset")

    monkeypatch.setattr(generation, "process_chunk", fails)
    with pytest.raises(RuntimeError):
        services.bill_run_process_chunk(chunk_id=chunk_ids[0])
    chunk = BillRunChunk.objects.get()
    assert (chunk.attempts, chunk.holder) == (1, "")
    # when
    sweep_leases()
    # then
    assert chunk_tasks(queued) == chunk_ids


@pytest.fixture
def fast_leases(settings):
    settings.BILLRUN_HEARTBEAT_SECONDS = 0.1
    settings.BILLRUN_LEASE_SECONDS = 0.6


def slow_work_sweeping(seconds=2.0):
    """Work that takes over three leases and lets the sweeper look meanwhile."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.2)
        services.bill_runs_sweep_leases(lease_seconds=0.6)


# Threads on the tests' in-memory SQLite database lock each other's tables at
# once ("database table is locked"), so the heartbeat thread is tested on
# PostgreSQL.
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_slow_chunk_renews_its_heartbeat_and_is_never_handed_to_another_worker(
    fast_leases, queued, monkeypatch
):
    # given a chunk whose work takes several leases
    run, chunk_ids = started(chunks=1, queued_ago=datetime.timedelta(seconds=0))
    real = generation.process_chunk
    beats = []

    def slow(chunk_id, *, cluster=""):
        first = BillRunChunk.objects.get(pk=chunk_id).heartbeat_at
        slow_work_sweeping()
        beats.append(BillRunChunk.objects.get(pk=chunk_id).heartbeat_at - first)
        return real(chunk_id, cluster=cluster)

    monkeypatch.setattr(generation, "process_chunk", slow)
    # when a worker processes it while the sweeper keeps looking
    assert services.bill_run_process_chunk(chunk_id=chunk_ids[0], cluster="host-a:1")
    # then its heartbeat moved on and nothing was queued again
    assert beats[0] > datetime.timedelta(seconds=1)
    assert chunk_tasks(queued) == []
    assert BillRunChunk.objects.get().attempts == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_slow_posting_renews_its_heartbeat_and_is_never_continued_elsewhere(
    fast_leases, queued, monkeypatch
):
    # given a completed run whose posting takes several leases
    ChargeFactory()
    run = services.bill_run_execute(
        run_id=services.bill_run_create(target_date=JAN, enqueue=False).pk
    )
    real = posting.documents_post_for_run

    def slow(**kwargs):
        slow_work_sweeping()
        return real(**kwargs)

    monkeypatch.setattr(posting, "documents_post_for_run", slow)
    # when
    run = services.bill_run_post(run=run, user=None, wait=True)
    # then
    assert run.status == RunStatus.POSTED
    assert [func for func, _ in queued if "posting" in func] == []


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_sweep_folds_the_change_stamps_of_connections_that_are_gone():
    from django.db import connection

    from core import stamps

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO core_changestamp (backend, version) "
            "VALUES (2000000003, nextval('core_changestamp_seq'))"
        )
    before = stamps.current().split(".")[0]
    sweep()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM core_changestamp WHERE backend = 2000000003")
        assert cursor.fetchone()[0] == 0
    assert stamps.current().split(".")[0] == before
