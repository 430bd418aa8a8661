"""A usage import racing a bill run over the same charge, on PostgreSQL with a
real ``import_usage`` process (issue 13): the import locks the accounts of
its charges as a run's chunk locks them, so either the run's sum includes a
record or the record is refused, naming the document that billed its period.

The run's side is played by the test itself, doing what a chunk does: lock
the account, then write a document (or read the usage). The engine does not
bill usage yet; when it does, it must read usage only under that lock.
"""

import datetime
import subprocess
import sys
import threading
from decimal import Decimal

import psycopg
import pytest
from django.db import connection, transaction

from customers.models import Account, UsageRecord
from customers.selectors import usage_quantities
from invoices.models import Document, DocumentItem
from tests.factories import UsageChargeFactory
from tests.processes import ROOT, process_env, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

JAN = datetime.date(2026, 1, 1)
JAN_END = datetime.date(2026, 1, 31)
FEB = datetime.date(2026, 2, 1)


def start_import(path):
    return subprocess.Popen(
        [sys.executable, "manage.py", "import_usage", str(path)],
        cwd=ROOT,
        env=process_env("usage-import"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def waiting_backends(query_start):
    """How many other sessions wait for a lock in a query starting so."""
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"], autocommit=True
    ) as watcher:
        return watcher.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE %s",
            [query_start + "%"],
        ).fetchone()[0]


def bill_january(charge, number="INV00000001"):
    document = Document.objects.create(
        document_type="invoice",
        number=number,
        account=charge.subscription.account,
        currency="USD",
        amount=Decimal("0.00"),
        balance=Decimal("0.00"),
        invoice_date=FEB,
        due_date=FEB,
    )
    DocumentItem.objects.create(
        document=document,
        charge=charge,
        subscription=charge.subscription,
        charge_name=charge.name,
        service_start=JAN,
        service_end=JAN_END,
        amount=Decimal("0.00"),
    )


def test_a_run_that_locked_the_account_first_makes_the_import_refuse_its_late_record(tmp_path):
    # given a file with a record of January, and a run's chunk holding the account
    charge = UsageChargeFactory(number="UC-RACE", start_date=JAN)
    path = tmp_path / "usage.csv"
    path.write_text("id,charge,date,quantity\nr1,UC-RACE,2026-01-10,5\n")
    with transaction.atomic():
        Account.objects.select_for_update().get(pk=charge.subscription.account_id)
        importer = start_import(path)
        # when the import reaches the account's lock while the run bills January
        wait_for(
            lambda: waiting_backends("SELECT a.id FROM customers_account") == 1,
            timeout=60,
            what="the import to wait for the account's lock",
        )
        bill_january(charge)
    out, err = importer.communicate(timeout=60)

    # then the import, let in after the run's commit, saw the document
    assert importer.returncode == 1, (out, err)
    assert "line 2, date: 2026-01-10 is in a period of charge UC-RACE already billed on " in err
    assert "INV00000001" in err
    assert not UsageRecord.objects.exists()


def test_a_run_that_comes_while_the_import_records_waits_and_then_sums_its_records(tmp_path):
    # given an import that holds the account's lock while it inserts (held up
    # here by another transaction inserting one of its ids, not committed yet)
    charge = UsageChargeFactory(number="UC-RACE", start_date=JAN)
    path = tmp_path / "usage.csv"
    path.write_text("id,charge,date,quantity\nr1,UC-RACE,2026-01-10,5\nr2,UC-RACE,2026-01-20,7.5\n")
    db = connection.settings_dict
    blocker = psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"])
    blocker.execute(
        "INSERT INTO customers_usagerecord (record_id, charge_id, date, quantity, imported_at) "
        "VALUES ('r2', %s, '2026-01-20', 7.5, now())",
        [charge.pk],
    )
    importer = start_import(path)
    wait_for(
        # (it writes the records with one COPY into their table)
        lambda: waiting_backends("COPY customers_usagerecord") == 1,
        timeout=60,
        what="the import to insert its records",
    )

    # when a run's chunk locks the account and sums January's usage
    summed = {}

    def run_chunk():
        try:
            with transaction.atomic():
                Account.objects.select_for_update().get(pk=charge.subscription.account_id)
                summed.update(usage_quantities([(charge.pk, JAN, FEB)]))
        finally:
            connection.close()

    chunk = threading.Thread(target=run_chunk)
    chunk.start()
    wait_for(
        lambda: waiting_backends("SELECT ") >= 1,
        timeout=30,
        what="the run's chunk to wait for the account",
    )
    assert not summed  # it waits for the import
    blocker.rollback()  # the other insert gives up: the import goes on and commits
    blocker.close()
    out, err = importer.communicate(timeout=60)
    chunk.join(timeout=60)

    # then the run's sum holds both records of the import
    assert (importer.returncode, out.strip(), err) == (
        0,
        "imported 2 usage records, 0 already recorded",
        "",
    )
    assert summed == {(charge.pk, JAN): Decimal("12.5")}
