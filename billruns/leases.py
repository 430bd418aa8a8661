"""Who is working on a step of a bill run, and whether that worker is alive.

A worker that takes a chunk, a posting or a cancel renews a lease on it while
it works: a small daemon thread (``Heartbeat``) with its own database
connection sets the step's ``heartbeat_at`` every BILLRUN_HEARTBEAT_SECONDS.
A worker that dies stops renewing it, and the sweeper (``start_sweeper``, a
thread in every task-queue worker, every BILLRUN_SWEEP_SECONDS) hands the step
to another worker once the lease (BILLRUN_LEASE_SECONDS) has run out. With
the defaults (5 s, 30 s, 10 s) a dead worker's chunk is queued again at most
about 40 s after the worker died.

The row the heartbeat renews (the chunk's, the run's) is the row the step's
own transaction locks (``SELECT ... FOR UPDATE``), so the heartbeat never
waits for it: it skips a locked row (``SKIP LOCKED``), and so does the
sweeper. That is sound because the lock is itself the proof of life: only a
transaction that is still open holds it, and a dead worker's transaction is
rolled back by PostgreSQL when its connection closes. (Were the sweeper to
queue such a chunk anyway, the new worker would only wait for the same
lock.) On SQLite the step's transaction holds the database's write lock: the
heartbeat gives up after a moment and tries again at the next beat, and the
sweeper's claim waits for the lock and then finds the chunk done. Correctness
never rests on the timing: a chunk is billed once because its transaction
marks it done (generation.py), whoever runs it.
"""

import logging
import os
import random
import threading
import time

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.utils import timezone

from core import locks

logger = logging.getLogger(__name__)

# How long the heartbeat waits for SQLite's write lock before it tries again
# at the next beat (PostgreSQL never waits: SKIP LOCKED).
SQLITE_BUSY_MS = 200

# The process whose sweeper thread runs (one per worker process).
_sweeper_pid = None


def heartbeat_seconds() -> float:
    return float(settings.BILLRUN_HEARTBEAT_SECONDS)


def lease_seconds() -> float:
    return float(settings.BILLRUN_LEASE_SECONDS)


def renew(model, pk, **still):
    """Set ``heartbeat_at`` of one row to now, if the row still matches
    ``still`` (the same holder, the same status) and no transaction holds it.
    Returns whether it was renewed."""
    with transaction.atomic():
        held = list(
            locks.locked(model.objects.filter(pk=pk, **still), skip_locked=True).values_list(
                "pk", flat=True
            )
        )
        if held:
            model.objects.filter(pk=pk).update(heartbeat_at=timezone.now())
    return bool(held)


class Heartbeat:
    """``with Heartbeat(beat): work()`` calls ``beat()`` every
    BILLRUN_HEARTBEAT_SECONDS in a daemon thread while ``work()`` runs.

    The first beat comes one interval after the start (the claim itself
    sets the first heartbeat), so a step shorter than that never opens the
    thread's connection. The thread dies with the process: that is the
    point, a dead worker's lease is not renewed.
    """

    def __init__(self, beat):
        self.beat = beat
        self.interval = heartbeat_seconds()
        self.stopped = threading.Event()
        self.thread = None

    def __enter__(self):
        if self.interval > 0:
            self.thread = threading.Thread(target=self._run, name="billrun-heartbeat", daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stopped.set()
        if self.thread is not None:
            # A beat in flight takes milliseconds (SQLite: at most its busy wait).
            self.thread.join(timeout=2)
        return False

    def _run(self):
        try:
            if connection.vendor == "sqlite":
                with connection.cursor() as cursor:
                    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_MS}")
            while not self.stopped.wait(self.interval):
                try:
                    self.beat()
                except DatabaseError as exc:
                    # SQLite while the step's transaction writes; a database
                    # restarting. The next beat tries again.
                    logger.debug("heartbeat skipped: %s", exc)
        except Exception:
            logger.exception("the bill run heartbeat stopped")
        finally:
            connection.close()


def start_sweeper(sender=None, proc_name="", **kwargs):
    """django-q2's ``post_spawn``: a sweeper thread in each worker process.

    django-q2's scheduler runs schedules at most every 30 s (in practice once
    a minute), too seldom to take up a dead worker's chunk within a minute;
    this thread sweeps the leases every BILLRUN_SWEEP_SECONDS. Every worker
    of every host sweeps: each sweep is a few indexed reads when nothing is
    due, and every hand-over is claimed under a row lock, so sweepers racing
    queue a step once.
    """
    from django_q.conf import Conf

    global _sweeper_pid
    interval = float(settings.BILLRUN_SWEEP_SECONDS)
    # The synchronous queue (tests) runs each task through a worker in the
    # caller's process: no sweeper there.
    if interval <= 0 or Conf.SYNC or _sweeper_pid == os.getpid():
        return
    _sweeper_pid = os.getpid()
    threading.Thread(
        target=_sweep_forever, args=(interval,), name="billrun-sweeper", daemon=True
    ).start()


def _sweep_forever(interval):
    from billruns import services  # services imports this module

    # Spread the workers' sweeps over the interval.
    time.sleep(random.uniform(0, interval))  # noqa: S311 - not for security
    while True:
        close_old_connections()
        try:
            services.bill_runs_sweep_leases(lease_seconds=lease_seconds())
        except Exception as exc:  # the database away, say: try again later
            logger.warning("sweeping bill run leases failed: %s", exc)
            connection.close()
        time.sleep(interval)
