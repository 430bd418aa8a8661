"""Pages served again while nothing they show has changed (core.pagecache,
core.stamps): the change stamp moves with every committed change to the
billing tables, whatever the commit order; a page kept under it is never
served once anything changed, never to a user with other permissions, and
never with another session's CSRF token or a request key served before."""

import re
import threading

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billruns.models import BillRun, RunStatus
from core import stamps
from invoices.models import Document
from notifications.models import Outcome, RunNotification
from tests.view_data import run_row

LIST = "/billing/bill-runs/"
on_postgres = pytest.mark.postgres


def kept_pages():
    return len(caches["pages"]._cache)


def unmasked(response):
    """The page without its CSRF tokens (masked afresh on every response)."""
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode())


def served_queries(client, url, data=None):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, data or {})
    assert response.status_code == 200
    return response, [query["sql"] for query in captured.captured_queries]


@pytest.mark.django_db
def test_sqlite_stamps_nothing_and_keeps_no_page(client, viewer):
    """The embedded setup renders every request (no statement triggers)."""
    if connection.vendor == "postgresql":
        assert stamps.current() is not None
        return
    assert stamps.current() is None
    run_row()
    client.force_login(viewer)
    client.get(LIST)
    client.get(LIST)
    assert kept_pages() == 0


@on_postgres
@pytest.mark.django_db
def test_every_billing_table_carries_the_trigger_and_the_unstamped_do_not():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE t.tgname = %s",
            [stamps.TRIGGER],
        )
        triggered = {row[0] for row in cursor.fetchall()}
    assert triggered == set(stamps.stamped_tables())
    assert "invoices_document" in triggered and "billruns_billrun" in triggered
    assert "billruns_billrun_subscriptions" in triggered  # (an m2m's own table)
    assert not triggered & stamps.UNSTAMPED_TABLES
    # install is idempotent (every migrate and flush runs it again)
    stamps.install()


@on_postgres
@pytest.mark.django_db
def test_the_stamp_moves_with_each_write_to_a_billing_table_and_not_with_a_sign_in(viewer):
    before = stamps.current()
    run = run_row()
    after_insert = stamps.current()
    assert after_insert != before
    BillRun.objects.filter(pk=run.pk).update(status=RunStatus.POSTED)
    after_update = stamps.current()
    assert after_update != after_insert
    BillRun.objects.filter(pk=run.pk).delete()
    assert stamps.current() != after_update
    settled = stamps.current()
    get_user_model().objects.filter(pk=viewer.pk).update(last_login="2026-12-01T00:00Z")
    assert stamps.current() == settled  # nothing a page shows
    get_user_model().objects.filter(pk=viewer.pk).update(username="viewer-2")
    assert stamps.current() != settled  # shown as who created a run


def _test_dsn():
    settings = connection.settings_dict
    return (
        f"host={settings['HOST'] or '127.0.0.1'} port={settings['PORT'] or 5432} "
        f"user={settings['USER']} dbname={settings['NAME']}"
    )


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_a_change_committed_after_a_later_one_still_moves_the_stamp():
    """A sequence's maximum would miss it: the first transaction takes its
    number, the second takes a higher one and commits, the stamp is read,
    then the first commits. The sum of the backends' rows moves."""
    first = psycopg.connect(_test_dsn())
    second = psycopg.connect(_test_dsn())
    try:
        first.execute("UPDATE customers_account SET name = name")
        second.execute("UPDATE customers_account SET name = name")
        second.commit()
        read_between = stamps.current()
        first.commit()
        assert stamps.current() != read_between
    finally:
        first.close()
        second.close()


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_writers_on_two_connections_never_wait_on_each_other_for_the_stamp():
    first = psycopg.connect(_test_dsn())
    try:
        first.execute("UPDATE customers_account SET name = name")  # holds its own row
        finished = threading.Event()

        def other():
            with psycopg.connect(_test_dsn(), autocommit=True) as conn:
                conn.execute("SET lock_timeout = '2s'")
                conn.execute("UPDATE customers_account SET name = name WHERE false")
            finished.set()

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(10)
        assert finished.is_set()
    finally:
        first.rollback()
        first.close()


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_folding_gone_backends_keeps_the_stamp():
    with connection.cursor() as cursor:
        # Rows of backends that no longer exist (pids no live backend has).
        cursor.execute(
            "INSERT INTO core_changestamp (backend, version) VALUES "
            "(2000000001, nextval('core_changestamp_seq')), "
            "(2000000002, nextval('core_changestamp_seq'))"
        )
    before = stamps.current().split(".")[0]
    assert stamps.fold() >= 2
    assert stamps.current().split(".")[0] == before
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM core_changestamp WHERE backend > 2000000000")
        assert cursor.fetchone()[0] == 0
    assert stamps.fold() == 0


@on_postgres
@pytest.mark.django_db
def test_the_list_is_served_again_with_three_queries_until_a_run_changes(client, superuser):
    run = run_row(status=RunStatus.COMPLETED)
    client.force_login(superuser)
    first, _ = served_queries(client, LIST)
    again, queries = served_queries(client, LIST)
    assert unmasked(again) == unmasked(first)
    # The session, the user and the stamp: no run, no notice.
    assert len(queries) == 3, queries
    assert "core_changestamp" in queries[-1]
    BillRun.objects.filter(pk=run.pk).update(status=RunStatus.POSTED)
    changed, queries = served_queries(client, LIST)
    assert len(queries) > 3
    row = re.search(rf'data-number="{run.number}".*?</tr>', changed.content.decode(), re.S)
    assert 'data-testid="billrun-status">Posted<' in row.group(0)


@on_postgres
@pytest.mark.django_db
def test_a_kept_page_is_never_served_to_a_user_with_other_permissions(client, clerk, viewer):
    run_row()
    client.force_login(clerk)
    assert b"New bill run" in client.get(LIST).content
    client.force_login(viewer)
    assert b"New bill run" not in client.get(LIST).content
    client.force_login(clerk)
    assert b"New bill run" in client.get(LIST).content


@on_postgres
@pytest.mark.django_db
def test_a_kept_run_page_carries_this_sessions_csrf_token_and_fresh_request_keys(superuser):
    from django.test import Client

    from core import pagecache

    run = run_row(status=RunStatus.POSTED, documents=1)
    url = f"/billing/bill-runs/{run.number}/"
    client = Client(enforce_csrf_checks=True)
    client.force_login(superuser)
    pages = [client.get(url).content.decode() for _ in range(2)]
    assert kept_pages() >= 1
    keys = []
    for page in pages:
        assert pagecache.CSRF_PLACEHOLDER not in page
        assert pagecache.placeholder("resend_request") not in page
        keys.append(re.search(r'name="resend_request" value="([^"]+)"', page).group(1))
    assert keys[0] != keys[1]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', pages[1]).group(1)
    response = client.post(
        f"/billing/bill-runs/{run.number}/email/",
        {"csrfmiddlewaretoken": token, "resend_request": keys[1]},
    )
    assert response.status_code == 302  # not 403: the token is this session's
    other = Client(enforce_csrf_checks=True)
    other.force_login(superuser)
    other.get(url)
    refused = other.post(
        f"/billing/bill-runs/{run.number}/email/",
        {"csrfmiddlewaretoken": token + "x", "resend_request": keys[1]},
    )
    assert refused.status_code == 403


@on_postgres
@pytest.mark.django_db
def test_a_run_page_that_polls_is_not_kept(client, superuser):
    run = run_row(status=RunStatus.PROCESSING)
    client.force_login(superuser)
    url = f"/billing/bill-runs/{run.number}/"
    served_queries(client, url)
    _, queries = served_queries(client, url)
    assert len(queries) > 3
    assert kept_pages() == 1  # the header's notices only


@on_postgres
@pytest.mark.django_db
def test_a_kept_run_page_shows_a_document_paid_since(client, superuser):
    run = run_row(status=RunStatus.POSTED, documents=1)
    client.force_login(superuser)
    url = f"/billing/bill-runs/{run.number}/"
    client.get(url)
    document = Document.all_objects.get(bill_run=run)
    Document.all_objects.filter(pk=document.pk).update(account_id=document.account_id)
    _, queries = served_queries(client, url)
    assert len(queries) > 3  # rendered again


@on_postgres
@pytest.mark.django_db
def test_the_header_shows_a_new_notice_on_a_kept_page(client, superuser):
    run = run_row()
    client.force_login(superuser)
    assert b'data-testid="notifications-unread"' not in client.get(LIST).content
    RunNotification.objects.create(user=superuser, bill_run=run, outcome=Outcome.COMPLETED)
    page = client.get(LIST).content.decode()
    assert re.search(r'data-testid="notifications-unread"[^>]*>1<', page)


@on_postgres
@pytest.mark.django_db
def test_a_viewers_kept_list_reads_no_permission_either(client, viewer):
    run_row()
    client.force_login(viewer)
    client.get(LIST)
    _, queries = served_queries(client, LIST)
    assert len(queries) == 3, queries  # session, user, stamp


@on_postgres
@pytest.mark.django_db
def test_a_permission_given_shows_on_the_next_request(client, viewer, clerk):
    run_row()
    client.force_login(viewer)
    assert b"New bill run" not in client.get(LIST).content
    viewer.groups.add(*clerk.groups.all())  # the clerk's role
    assert b"New bill run" in client.get(LIST).content
    viewer.groups.clear()
    assert b"New bill run" not in client.get(LIST).content


@on_postgres
@pytest.mark.django_db
def test_the_kept_whole_page_is_each_users_own(client, django_user_model):
    run_row()
    first = django_user_model.objects.create_superuser("ana", "ana@example.com", "pw")
    second = django_user_model.objects.create_superuser("ben", "ben@example.com", "pw")
    for user in (first, second, first, second):
        client.force_login(user)
        page = client.get(LIST).content.decode()
        assert f"</span>{user.username}" in page.replace("\n", "").replace("  ", "")
        other = second if user == first else first
        assert f"Signed in as {other.username}" not in page
    django_user_model.objects.filter(pk=first.pk).update(is_staff=False)
    client.force_login(first)
    assert "Administration" not in client.get(LIST).content.decode()


@on_postgres
@pytest.mark.django_db
def test_a_kept_page_still_shows_the_requests_messages(client, superuser):
    from django.contrib.messages import constants
    from django.contrib.messages.storage.base import Message
    from django.contrib.messages.storage.cookie import CookieStorage
    from django.test import RequestFactory

    run_row()
    client.force_login(superuser)
    client.get(LIST)
    storage = CookieStorage(RequestFactory().get("/"))
    client.cookies["messages"] = storage._encode([Message(constants.SUCCESS, "BR-1 is posted.")])
    assert "BR-1 is posted." in client.get(LIST).content.decode()
    assert "BR-1 is posted." not in client.get(LIST).content.decode()  # shown once
