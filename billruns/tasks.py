"""Task-queue entry points: thin, each loads by id and calls a service.

Every task is idempotent: django-q2 may deliver one twice, and the sweeper
queues again whatever a dead worker left behind.
"""

import os
import socket

from django.conf import settings
from django.contrib.auth import get_user_model

from billruns import review, services

PENDING_GRACE_SECONDS = 120


def _cluster_name():
    """Which host (BILLING_NODE, else the host name) and worker ran a task."""
    return f"{settings.BILLING_NODE or socket.gethostname()}:{os.getpid()}"


def _user(user_id):
    if user_id is None:
        return None
    return get_user_model().objects.filter(pk=user_id).first()


def start_bill_run(run_id):
    services.bill_run_start(run_id=run_id)


def process_bill_run_chunk(chunk_id):
    services.bill_run_process_chunk(chunk_id=chunk_id, cluster=_cluster_name())


def continue_posting(run_id, user_id):
    services.bill_run_continue_posting(run_id=run_id, user=_user(user_id))


def continue_canceling(run_id, user_id):
    services.bill_run_continue_canceling(run_id=run_id, user=_user(user_id))


def sweep_bill_runs():
    services.bill_runs_sweep(
        lease_seconds=settings.BILLRUN_LEASE_SECONDS,
        pending_grace_seconds=PENDING_GRACE_SECONDS,
    )


def write_review(run_id):
    review.run_review_write(run_id=run_id)


def sweep_previews():
    services.previews_sweep()
