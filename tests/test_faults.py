"""Faults with real processes on PostgreSQL: a worker killed with SIGKILL in
the middle of a run and of a posting, a worker's database connection
terminated mid-chunk, a mail server down, and commands racing each other.

To stop a worker at a known point, the test holds a row lock (an account in
the middle of the book, or a document in the middle of a run) so that the
worker blocks on it; then it kills the worker, or its connection, and lets go.

Sized by FAULT_ACCOUNTS (CI: 2,000; ``make faults``: 20,000).
"""

import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from django.db import connection, transaction
from django.utils import timezone
from django_q.models import Schedule

from billruns.models import BillRun, BillRunChunk, RunStatus
from customers.importer import accounts_import
from customers.models import Account
from invoices.models import Document, DocumentItem, DocumentStatus
from notifications.models import EmailDelivery
from tests.processes import (
    BROKERS,
    ROOT,
    kill,
    manage,
    process_env,
    queue,
    start_cluster,
    stop,
    wait_for,
)
from tools.books import benchmark_book

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ACCOUNTS = int(os.environ.get("FAULT_ACCOUNTS", "2000"))
TARGET = "2026-03-01"
# Short leases for the tests that are not about their length; the SIGKILL
# mid-run test on the ORM broker keeps the defaults and measures them.
FAST_LEASES = {
    "BILLRUN_LEASE_SECONDS": 3,
    "BILLRUN_HEARTBEAT_SECONDS": 0.5,
    "BILLRUN_SWEEP_SECONDS": 1,
}
SIZES = {"BILLRUN_CHUNK_SIZE": 100, "POST_BATCH_SIZE": 100}
ENV = {**SIZES, **FAST_LEASES}
# A dead worker's chunk must be queued again within this (issue 11).
TAKE_UP_SECONDS = 60


@pytest.fixture(autouse=True)
def sweeper():
    """The sweeper's schedule (a transactional test flushes migration data)."""
    Schedule.objects.update_or_create(
        name="Sweep bill runs",
        defaults={
            "func": "billruns.tasks.sweep_bill_runs",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
            "next_run": timezone.now(),
        },
    )


@pytest.fixture
def book():
    accounts_import(document=benchmark_book(ACCOUNTS, 2))


def someone_waits_on_a_lock():
    with connection.cursor() as cursor:
        # Inside a transaction PostgreSQL keeps the first view of
        # pg_stat_activity it took; the tests poll from inside the one that
        # holds the lock, so each poll asks for a fresh view.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0] > 0


def blocked_backend_pids():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in cursor.fetchall()]


def status_of(number):
    return BillRun.objects.get(number=number).status


def billed(number):
    """What a run billed: (account, charge, period, amount) of each item."""
    return Counter(
        DocumentItem.objects.filter(document__bill_run__number=number).values_list(
            "document__account__number", "charge_id", "service_start", "service_end", "amount"
        )
    )


def no_period_billed_twice():
    live = Counter(
        DocumentItem.objects.filter(document_canceled=False).values_list(
            "charge_id", "service_start"
        )
    )
    return max(live.values(), default=1) == 1


def undisturbed_run_of(number):
    """Cancel the run, bill the same again in one process, return what it billed."""
    manage("billrun", "cancel", number, **ENV)
    again = manage("billrun", "create", "--target-date", TARGET, "--wait", **ENV)
    return again.stdout.splitlines()[0].strip()


def middle_account_id():
    return Account.objects.order_by("id").values_list("id", flat=True)[ACCOUNTS // 2]


@pytest.mark.parametrize(
    ("broker", "leases"), [("orm", "default"), ("redis", "fast")], ids=["orm", "redis"]
)
def test_a_worker_killed_mid_run_is_taken_up_and_bills_exactly_once(book, broker, leases, capsys):
    with queue(broker) as queue_env:
        env = {**(SIZES if leases == "default" else ENV), **queue_env}
        a_worker_killed_mid_run_is_taken_up_and_bills_exactly_once(env, broker, leases, capsys)


def a_worker_killed_mid_run_is_taken_up_and_bills_exactly_once(env, broker, leases, capsys):
    # given a cluster working through a run, stopped halfway on a locked account
    cluster = start_cluster("host-a", **env)
    try:
        with transaction.atomic():
            Account.objects.select_for_update().get(pk=middle_account_id())
            number = manage("billrun", "create", "--target-date", TARGET, **env).stdout.split()[0]
            wait_for(someone_waits_on_a_lock, timeout=300, what="the worker to block")
            run = BillRun.objects.get(number=number)
            assert 0 < run.accounts_processed < run.accounts_selected
            # when the worker is killed
            kill(cluster)
            killed_at = time.monotonic()
    finally:
        if cluster.poll() is None:
            kill(cluster)
    dead_chunk = next(
        chunk
        for chunk in BillRunChunk.objects.filter(bill_run__number=number)
        if middle_account_id() in chunk.account_ids
    )
    assert dead_chunk.holder.startswith("host-a")
    # and a cluster starts again
    cluster = start_cluster("host-b", **env)
    try:
        wait_for(
            lambda: (
                BillRunChunk.objects.filter(pk=dead_chunk.pk, holder__startswith="host-b")
                .exclude(status="pending", attempts=dead_chunk.attempts)
                .exists()
            ),
            timeout=300,
            what="the dead worker's chunk to be taken up",
        )
        taken_up = time.monotonic() - killed_at
        wait_for(
            lambda: status_of(number) in (RunStatus.COMPLETED, RunStatus.ERROR),
            timeout=300,
            what="the run to complete",
        )
        completed = time.monotonic() - killed_at
    finally:
        stop(cluster)
    with capsys.disabled():
        print(
            f"\n[{broker}, {leases} leases, {ACCOUNTS} accounts] SIGKILL mid-run: the dead "
            f"worker's chunk was taken up {taken_up:.1f} s after the kill, the run "
            f"Completed {completed:.1f} s after it"
        )
    # then the dead worker's chunk was taken up within a minute
    assert taken_up <= TAKE_UP_SECONDS
    # and the run completed with each period billed once
    run = BillRun.objects.get(number=number)
    assert run.status == RunStatus.COMPLETED
    assert run.accounts_processed == ACCOUNTS
    assert no_period_billed_twice()
    # and exactly what an undisturbed run bills
    recovered = billed(number)
    assert billed(undisturbed_run_of(number)) == recovered


@pytest.mark.parametrize("broker", BROKERS)
def test_a_worker_killed_mid_posting_leaves_each_document_posted_once(book, broker):
    with queue(broker) as queue_env:
        a_worker_killed_mid_posting_leaves_each_document_posted_once({**ENV, **queue_env})


def a_worker_killed_mid_posting_leaves_each_document_posted_once(env):
    # given a completed run
    number = manage("billrun", "create", "--target-date", TARGET, "--wait", **env).stdout.split()[0]
    documents = Document.objects.filter(bill_run__number=number).order_by("id")
    middle = documents.values_list("id", flat=True)[documents.count() // 2]
    cluster = start_cluster("host-a", **env)
    try:
        # when its posting, queued, blocks halfway and the worker is killed
        with transaction.atomic():
            Document.objects.select_for_update().get(pk=middle)
            manage(
                "shell",
                "-c",
                "from billruns import services; from billruns.models import BillRun; "
                f"services.bill_run_post(run=BillRun.objects.get(number='{number}'), "
                "user=None, wait=False)",
                **env,
            )
            wait_for(someone_waits_on_a_lock, timeout=300, what="the posting to block")
            kill(cluster)
    finally:
        if cluster.poll() is None:
            kill(cluster)
    posted_before = dict(
        documents.filter(status=DocumentStatus.POSTED).values_list("id", "posted_at")
    )
    assert status_of(number) == RunStatus.POST_IN_PROGRESS
    assert 0 < len(posted_before) < documents.count()
    cluster = start_cluster("host-b", **env)
    try:
        wait_for(lambda: status_of(number) == RunStatus.POSTED, timeout=300, what="Posted")
    finally:
        stop(cluster)
    # then every document is posted, and those posted before were not posted again
    assert set(documents.values_list("status", flat=True)) == {DocumentStatus.POSTED}
    assert {
        pk: posted_at
        for pk, posted_at in documents.values_list("id", "posted_at")
        if pk in posted_before
    } == posted_before


def test_a_terminated_database_connection_mid_chunk_loses_nothing(book):
    cluster = start_cluster("host-a", **ENV)
    try:
        # given a worker blocked in the middle of a chunk
        with transaction.atomic():
            Account.objects.select_for_update().get(pk=middle_account_id())
            number = manage("billrun", "create", "--target-date", TARGET, **ENV).stdout.split()[0]
            wait_for(someone_waits_on_a_lock, timeout=300, what="the worker to block")
            # when its database connection is terminated
            with connection.cursor() as cursor:
                for pid in blocked_backend_pids():
                    cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        # then the chunk is redone and the run completes, billing each period once
        wait_for(
            lambda: status_of(number) in (RunStatus.COMPLETED, RunStatus.ERROR),
            timeout=300,
            what="the run to complete",
        )
    finally:
        stop(cluster)
    run = BillRun.objects.get(number=number)
    assert run.status == RunStatus.COMPLETED
    assert run.accounts_processed == ACCOUNTS
    assert no_period_billed_twice()
    assert billed(undisturbed_run_of(number)) == billed(number)


def test_concurrent_create_wait_commands_bill_every_period_once(book):
    # when four operators start the same run at once
    commands = [
        subprocess.Popen(
            [sys.executable, "manage.py", "billrun", "create", "--target-date", TARGET, "--wait"],
            cwd=ROOT,
            env=process_env(f"op{index}", **ENV),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(4)
    ]
    outcomes = [command.communicate(timeout=600) for command in commands]
    # then every command succeeded and every period was billed exactly once overall
    assert [command.returncode for command in commands] == [0, 0, 0, 0], outcomes
    assert no_period_billed_twice()
    numbers = [out.split()[0] for out, _ in outcomes]
    total = sum((billed(number) for number in numbers), Counter())
    single = manage("billrun", "create", "--target-date", TARGET, "--wait", **ENV)
    assert not billed(single.stdout.split()[0])  # nothing was left unbilled
    for number in numbers:
        manage("billrun", "cancel", number, check=False, **ENV)
    # (cancel order is free: a later run may block an earlier one; cancel until none left)
    for _ in range(4):
        for number in numbers:
            if status_of(number) == RunStatus.COMPLETED:
                manage("billrun", "cancel", number, check=False, **ENV)
    assert billed(undisturbed_run_of_all()) == total


def undisturbed_run_of_all():
    again = manage("billrun", "create", "--target-date", TARGET, "--wait", **ENV)
    return again.stdout.splitlines()[0].strip()


class RecordingSMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP to take a message and keep it."""

    def handle(self):
        self.wfile.write(b"220 test ESMTP\r\n")
        receiving, lines = False, []
        for line in self.rfile:
            if receiving:
                if line.rstrip(b"\r\n") == b".":
                    self.server.messages.append(b"".join(lines))
                    receiving, lines = False, []
                    self.wfile.write(b"250 OK\r\n")
                else:
                    lines.append(line)
                continue
            command = line[:4].upper()
            if command == b"DATA":
                receiving = True
                self.wfile.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            elif command == b"QUIT":
                self.wfile.write(b"221 Bye\r\n")
                return
            else:  # EHLO, HELO, MAIL, RCPT, RSET, NOOP
                self.wfile.write(b"250 OK\r\n")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_mail_server_down_for_the_whole_run_gets_the_email_once_it_is_back(
    django_user_model,
):
    # given a mail server that is down, and a cluster that sends through it
    port = free_port()
    mail = {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": port,
        "EMAIL_TIMEOUT": 5,
    }
    django_user_model.objects.create_superuser("boss", "boss@example.com", "pw")
    accounts_import(document=benchmark_book(20, 1))
    cluster = start_cluster("host-a", **ENV, **mail)
    server = None
    try:
        # when a run completes while it is down
        number = manage(
            "billrun", "create", "--target-date", TARGET, "--user", "boss", **ENV
        ).stdout.split()[0]
        failed_once = EmailDelivery.objects.filter(
            bill_run__number=number, attempts__gte=1, status="pending"
        ).exclude(last_error="")
        wait_for(failed_once.exists, timeout=300, what="the first attempt to fail")
        delivery = failed_once.get()
        assert status_of(number) == RunStatus.COMPLETED
        # and the server comes back
        server = socketserver.ThreadingTCPServer(("127.0.0.1", port), RecordingSMTPHandler)
        server.messages = []
        threading.Thread(target=server.serve_forever, daemon=True).start()
        # then the email goes out, once
        wait_for(
            lambda: EmailDelivery.objects.get(pk=delivery.pk).status == "sent",
            timeout=300,
            what="the retry to send",
        )
    finally:
        stop(cluster)
        if server is not None:
            server.shutdown()
            server.server_close()
    assert len(server.messages) == 1
    assert number.encode() in server.messages[0]
    assert status_of(number) == RunStatus.COMPLETED
