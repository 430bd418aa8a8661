"""Several task-queue clusters, each standing for a host, share one bill run.

Real processes on PostgreSQL: two ``qcluster`` processes with the ORM broker
against the test database, a run created by ``billrun create`` in a third.
"""

from collections import Counter

import pytest
from django.db import transaction

from billruns.models import BillRun, BillRunChunk, RunStatus
from customers.models import Account, Charge
from invoices.models import DocumentItem
from tests.processes import manage, start_cluster, stop, wait_for
from tests.test_billrun_concurrency import make_book

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CLUSTER = {"Q_QUEUE_LIMIT": 1, "BILLRUN_CHUNK_SIZE": 4}


def documents_by_charge_period():
    return Counter(
        DocumentItem.objects.values_list("charge_id", "service_start", "service_end", "amount")
    )


def test_two_clusters_share_the_chunks_of_one_run():
    # given 80 accounts: 20 chunks of 4
    make_book(80)
    clusters = [start_cluster("host-a", **CLUSTER), start_cluster("host-b", **CLUSTER)]
    try:
        # when a run is queued by a separate process, while the first chunk's
        # first account is locked: whichever host takes that chunk waits, so
        # the other must process chunks for the run to move on
        with transaction.atomic():
            Account.objects.select_for_update().get(pk=Account.objects.order_by("id")[0].pk)
            created = manage("billrun", "create", "--target-date", "2026-06-30", **CLUSTER)
            number = created.stdout.splitlines()[0].strip()
            wait_for(
                lambda: BillRun.objects.get(number=number).accounts_processed >= 8,
                timeout=300,
                what="the other host to process chunks",
            )
        wait_for(
            lambda: (
                BillRun.objects.get(number=number).status in (RunStatus.COMPLETED, RunStatus.ERROR)
            ),
            timeout=300,
            what="the run to finish",
        )
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
    manage("billrun", "create", "--target-date", "2026-06-30", "--wait", **CLUSTER)
    assert documents_by_charge_period() == shared
