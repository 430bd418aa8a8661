"""The bill run pages read a fixed number of queries, however many runs,
documents or failures they show (issue 18): the list, a run's page and each
of its tabs, counted with few rows and again with many."""

import pytest
from django.core.cache import caches
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from billruns.models import BillRun, BillRunFailure, RunStatus
from invoices.models import DocumentType
from tests.factories import AccountFactory, SubscriptionFactory
from tests.view_data import document_row, run_row

pytestmark = pytest.mark.django_db

LIST = "/billing/bill-runs/"


def queries_of(client, url, data=None):
    """The queries of rendering the page (not of serving it from the page
    cache, core.pagecache: tests/test_page_cache.py counts those)."""
    caches["pages"].clear()
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, data or {})
    assert response.status_code == 200
    return len(captured.captured_queries)


def varied_runs(count):
    """Runs of every kind the list's rows show: failed, retried, for one
    account with subscriptions, posted with documents."""
    for _ in range(count):
        failed = run_row(failures=1, documents=1)
        run_row(retry_of=failed, accounts_selected=1)
        account = AccountFactory()
        single = run_row(account=account)
        single.subscriptions.add(SubscriptionFactory(account=account))
        run_row(status=RunStatus.POSTED, documents=2, totals={"USD": "1.00", "EUR": "2.00"})


def test_the_list_reads_as_many_queries_for_4_runs_as_for_a_full_page(client, viewer):
    varied_runs(1)
    client.force_login(viewer)
    client.get(LIST)  # the session's first read is not the page's
    few = queries_of(client, LIST)
    varied_runs(7)  # 32 runs: a full page of 25 and a second page
    assert queries_of(client, LIST) == few
    assert queries_of(client, LIST, {"page": 2}) == few


def add_rows(run, count):
    """``count`` more invoices, credit memos and failed accounts in ``run``."""
    for _ in range(count):
        document_row(bill_run=run)
        document_row(bill_run=run, document_type=DocumentType.CREDIT_MEMO, amount="10.00")
        BillRunFailure.objects.create(
            bill_run=run, account=AccountFactory(), reason="Bill-to contact is missing"
        )
    BillRun.objects.filter(pk=run.pk).update(
        invoices_count=F("invoices_count") + count,
        credit_memos_count=F("credit_memos_count") + count,
        accounts_failed=F("accounts_failed") + count,
        accounts_selected=F("accounts_selected") + 2 * count,
        accounts_processed=F("accounts_processed") + 2 * count,
        has_errors=True,
    )


@pytest.mark.parametrize("tab", ["", "invoices", "credit-memos", "failures", "review"])
def test_a_runs_page_and_each_tab_read_as_many_queries_for_30_rows_as_for_1(client, viewer, tab):
    run = run_row()
    add_rows(run, 1)
    url = f"/billing/bill-runs/{run.number}/"
    data = {"tab": tab} if tab else {}
    client.force_login(viewer)
    client.get(url, data)  # the review tab is written by its first view
    few = queries_of(client, url, data)
    add_rows(run, 29)
    client.get(url, data)  # and written again once the run's documents changed
    assert queries_of(client, url, data) == few
