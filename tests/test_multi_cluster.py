"""Several task-queue clusters, each standing for a host, share one bill run.

Real processes on PostgreSQL: two ``qcluster`` processes, on the ORM broker
(the test database) and on Redis, a run created by ``billrun create`` in a
third.
"""

import time
from collections import Counter

import pytest
from django.db import transaction

from billruns.models import BillRun, BillRunChunk, RunStatus
from customers.models import Account, Charge
from invoices.models import DocumentItem
from tests.processes import BROKERS, manage, queue, start_cluster, stop, wait_for
from tests.test_billrun_concurrency import make_book

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Short leases, so that the test sees many of them run out while one host is
# blocked on a chunk.
LEASES = {
    "BILLRUN_LEASE_SECONDS": 2,
    "BILLRUN_HEARTBEAT_SECONDS": 0.5,
    "BILLRUN_SWEEP_SECONDS": 0.5,
}
CLUSTER_SETTINGS = {"Q_QUEUE_LIMIT": 1, "BILLRUN_CHUNK_SIZE": 4, **LEASES}


def documents_by_charge_period():
    return Counter(
        DocumentItem.objects.values_list("charge_id", "service_start", "service_end", "amount")
    )


@pytest.mark.parametrize("broker", BROKERS)
def test_two_clusters_share_the_chunks_of_one_run(broker):
    with queue(broker) as queue_env:
        two_clusters_share_the_chunks_of_one_run({**CLUSTER_SETTINGS, **queue_env})


def two_clusters_share_the_chunks_of_one_run(cluster):
    # given 80 accounts: 20 chunks of 4
    make_book(80)
    clusters = [start_cluster("host-a", **cluster), start_cluster("host-b", **cluster)]
    first_chunk = None
    try:
        # when a run is queued by a separate process, while the first chunk's
        # first account is locked: whichever host takes that chunk waits, so
        # the other must process chunks for the run to move on
        with transaction.atomic():
            Account.objects.select_for_update().get(pk=Account.objects.order_by("id")[0].pk)
            created = manage("billrun", "create", "--target-date", "2026-06-30", **cluster)
            number = created.stdout.splitlines()[0].strip()
            wait_for(
                lambda: BillRun.objects.get(number=number).accounts_processed == 76,
                timeout=300,
                what="the other host to process the other chunks",
            )
            # and the blocked chunk stays with the host that took it, live,
            # for three leases while both hosts sweep
            time.sleep(3 * LEASES["BILLRUN_LEASE_SECONDS"])
            first_chunk = BillRunChunk.objects.get(bill_run__number=number, index=0)
        wait_for(
            lambda: (
                BillRun.objects.get(number=number).status in (RunStatus.COMPLETED, RunStatus.ERROR)
            ),
            timeout=300,
            what="the run to finish",
        )
    finally:
        for process in clusters:
            stop(process)

    # then the slow chunk was worked once, by the host that had it
    assert (first_chunk.status, first_chunk.attempts) == ("pending", 1)
    assert first_chunk.holder.startswith(("host-a", "host-b"))
    chunks = BillRunChunk.objects.filter(bill_run__number=number)
    assert chunks.get(index=0).cluster.split(":")[0] == first_chunk.holder.split(":")[0]
    assert set(chunks.values_list("attempts", flat=True)) == {1}
    # and both hosts processed chunks
    run = BillRun.objects.get(number=number)
    assert run.status == RunStatus.COMPLETED
    nodes = Counter(name.split(":")[0] for name in chunks.values_list("cluster", flat=True))
    assert set(nodes) == {"host-a", "host-b"}, nodes
    assert sum(nodes.values()) == 20
    shared = documents_by_charge_period()

    # and the documents are exactly those of a single-worker run
    DocumentItem.objects.all().delete()
    run.documents.all().delete()
    Charge.objects.update(charged_through_date=None)
    manage("billrun", "create", "--target-date", "2026-06-30", "--wait", **cluster)
    assert documents_by_charge_period() == shared
