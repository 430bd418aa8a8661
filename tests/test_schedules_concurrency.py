"""Several clusters firing one schedule at once, on PostgreSQL with real threads.

Each thread has its own database connection, as separate clusters would.
"""

import datetime
import threading

import pytest
from django.db import connection

from billruns import schedules
from billruns.models import BillRun
from billruns.services import bill_run_create

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

UTC = datetime.UTC
THREADS = 6


def run_in_threads(count, work):
    barrier = threading.Barrier(count)
    results, errors = [], []

    def target(index):
        try:
            barrier.wait()
            results.append(work(index))
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results


@pytest.fixture
def schedule(django_user_model):
    owner = django_user_model.objects.create_user("owner", password="pw")
    return schedules.schedule_create(
        owner=owner,
        now=datetime.datetime(2026, 1, 10, tzinfo=UTC),
        name="Monthly",
        repeats="monthly",
        day_of_month=15,
        run_time=datetime.time(6, 0),
        time_zone="UTC",
        start_date=datetime.date(2026, 1, 1),
    )


def test_clusters_firing_at_once_make_one_run(schedule):
    now = datetime.datetime(2026, 1, 15, 6, 0, 3, tzinfo=UTC)

    run_in_threads(THREADS, lambda _index: schedules.schedules_fire_due(now=now))

    run = BillRun.objects.get(schedule=schedule)
    assert run.occurrence == datetime.datetime(2026, 1, 15, 6, tzinfo=UTC)
    assert run.created_by == schedule.owner
    schedule.refresh_from_db()
    assert schedule.next_run_at == datetime.datetime(2026, 2, 15, 6, tzinfo=UTC)


def test_the_database_makes_racing_creates_of_one_occurrence_one_run(schedule):
    # Past the schedule's lock (a stale read): only the unique constraint guards.
    occurrence = datetime.datetime(2026, 1, 15, 6, tzinfo=UTC)

    runs = run_in_threads(
        THREADS,
        lambda _index: bill_run_create(
            target_date=datetime.date(2026, 1, 15),
            schedule=schedule,
            occurrence=occurrence,
            created_by=schedule.owner,
            enqueue=False,
        ),
    )

    assert BillRun.objects.filter(schedule=schedule).count() == 1
    assert {run.pk for run in runs} == {BillRun.objects.get(schedule=schedule).pk}
