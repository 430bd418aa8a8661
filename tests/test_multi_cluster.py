"""Several task-queue clusters, each standing for a host, share one bill run.

Real processes on PostgreSQL: two ``qcluster`` processes with the ORM broker
against the test database, a run created by ``billrun create`` in a third.
"""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from django.db import connection

from billruns.models import BillRun, BillRunChunk, RunStatus
from customers.models import Charge
from invoices.models import DocumentItem
from tests.test_billrun_concurrency import make_book

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent


def process_env(node):
    db = connection.settings_dict
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "billing_site.settings",
        "DEBUG": "1",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "Q_WORKERS": "1",
        "Q_QUEUE_LIMIT": "1",
        "BILLRUN_CHUNK_SIZE": "4",
        "BILLING_NODE": node,
        "REDIS_URL": "",
    }


def start_cluster(node):
    return subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=process_env(node),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(cluster):
    os.killpg(cluster.pid, signal.SIGTERM)
    try:
        cluster.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(cluster.pid, signal.SIGKILL)
        cluster.wait()


def documents_by_charge_period():
    return Counter(
        DocumentItem.objects.values_list("charge_id", "service_start", "service_end", "amount")
    )


def test_two_clusters_share_the_chunks_of_one_run():
    # given 80 accounts: 20 chunks of 4
    make_book(80)
    clusters = [start_cluster("host-a"), start_cluster("host-b")]
    try:
        time.sleep(3)
        # when a run is queued by a separate process
        created = subprocess.run(
            [sys.executable, "manage.py", "billrun", "create", "--target-date", "2026-06-30"],
            cwd=ROOT,
            env=process_env("cli"),
            capture_output=True,
            text=True,
            check=True,
        )
        number = created.stdout.splitlines()[0].strip()
        deadline = time.monotonic() + 120
        while BillRun.objects.get(number=number).status not in (
            RunStatus.COMPLETED,
            RunStatus.ERROR,
        ):
            assert time.monotonic() < deadline, "the run did not finish in time"
            time.sleep(0.2)
    finally:
        for cluster in clusters:
            stop(cluster)

    # then both hosts processed chunks
    run = BillRun.objects.get(number=number)
    assert run.status == RunStatus.COMPLETED
    nodes = Counter(
        name.split(":")[0] for name in BillRunChunk.objects.values_list("cluster", flat=True)
    )
    assert set(nodes) == {"host-a", "host-b"}, nodes
    assert sum(nodes.values()) == 20
    shared = documents_by_charge_period()

    # and the documents are exactly those of a single-worker run
    DocumentItem.objects.all().delete()
    run.documents.all().delete()
    Charge.objects.update(charged_through_date=None)
    subprocess.run(
        [sys.executable, "manage.py", "billrun", "create", "--target-date", "2026-06-30", "--wait"],
        cwd=ROOT,
        env=process_env("single"),
        capture_output=True,
        check=True,
    )
    assert documents_by_charge_period() == shared
