"""core.bulk: COPY's text format written by the project, SQLite's executemany
writer, and __anyof."""

import datetime
import os
import subprocess
import sys
import uuid
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.db import connection
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from core import bulk
from customers.models import Account, Status
from invoices.models import DocumentTax, DocumentType
from tests.factories import AccountFactory, DocumentFactory
from tests.processes import ROOT


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "\\N"),
        ("plain", "plain"),
        ("tab\there", "tab\\there"),
        ("line\nbreak\rreturn", "line\\nbreak\\rreturn"),
        ("back\\slash", "back\\\\slash"),
        ("ünïcode €", "ünïcode €"),
        (True, "t"),
        (False, "f"),
        (42, "42"),
        (Decimal("-0.50"), "-0.50"),
        (datetime.date(2026, 2, 28), "2026-02-28"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        ({"a": [1, "x\ty"]}, '{"a": [1, "x\\\\ty"]}'),
        (DocumentType.CREDIT_MEMO, "credit_memo"),
        (Status.ACTIVE, "Active"),
    ],
)
def test_values_are_written_in_copys_text_format(value, text):
    assert bulk._copy_text(value) == text


def test_an_unknown_type_is_an_error_not_a_guess():
    with pytest.raises(TypeError, match="cannot COPY a float"):
        bulk._copy_text(1.5)


@pytest.mark.postgres
@pytest.mark.django_db
def test_rows_written_by_copy_read_back_as_they_were():
    # given names with every character COPY's text format escapes
    names = ["tab\tname", "new\nline", "back\\slash\\", "carriage\rreturn", "€ ünïcode", ""]
    now = timezone.now()
    with connection.cursor() as cursor:
        ids = bulk.reserve_ids(cursor, Account, len(names))
        bulk.copy_rows(
            cursor,
            Account,
            (
                {
                    "id": id_,
                    "number": f"COPY{i}",
                    "name": name,
                    "currency": "USD",
                    "bill_cycle_day": 1,
                    "created_at": now,
                }
                for i, (id_, name) in enumerate(zip(ids, names, strict=True))
            ),
        )
    # then
    stored = dict(Account.objects.filter(id__in=ids).values_list("id", "name"))
    assert [stored[id_] for id_ in ids] == names
    account = Account.objects.get(id=ids[0])
    assert (account.batch, account.status, account.created_at) == (1, Status.ACTIVE, now)


@pytest.mark.django_db
def test_anyof_selects_the_rows_with_one_of_the_ids():
    accounts = [AccountFactory() for _ in range(3)]
    chosen = [accounts[0].id, accounts[2].id, 10**12]
    assert sorted(Account.objects.filter(id__anyof=chosen).values_list("id", flat=True)) == [
        accounts[0].id,
        accounts[2].id,
    ]
    assert not Account.objects.filter(id__anyof=[]).exists()
    assert Account.objects.filter(id__anyof=[]).count() == 0


def test_anyof_is_there_once_django_has_started_whatever_was_imported():
    # given: a fresh process that imports nothing of the project's but its models
    script = (
        "import django; django.setup(); "
        "from customers.models import Account, Subscription; "
        "print(Account.objects.filter(id__anyof=[7]).query); "
        "print(Subscription.objects.filter(account_id__anyof=[7]).query)"
    )
    # when
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "billing_site.settings_test"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    # then
    assert result.returncode == 0, result.stderr
    queries = result.stdout.splitlines()
    assert len(queries) == 2
    assert all("IN (7)" in sql or "= ANY({7}::bigint[])" in sql for sql in queries), queries


def _on_sqlite():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's executemany writer")


@pytest.mark.django_db
def test_sqlite_ids_are_reserved_above_every_id_the_table_ever_held():
    _on_sqlite()
    # given an account deleted after its id was taken
    AccountFactory()
    deleted = AccountFactory().id
    Account.objects.filter(id=deleted).delete()
    names = ["tab\tname", "quote ' \" ", "€ ünïcode", ""]
    now = timezone.now()
    with connection.cursor() as cursor:
        ids = bulk.sqlite_reserve_ids(cursor, Account, len(names))
        bulk.sqlite_insert_dicts(
            cursor,
            Account,
            [
                {
                    "id": id_,
                    "number": f"SQL{i}",
                    "name": name,
                    "currency": "USD",
                    "bill_cycle_day": 1,
                    "created_at": now,
                }
                for i, (id_, name) in enumerate(zip(ids, names, strict=True))
            ],
        )
    # then AUTOINCREMENT's counter is respected: the deleted id is not reused
    assert ids == list(range(deleted + 1, deleted + 1 + len(names)))
    stored = dict(Account.objects.filter(id__in=ids).values_list("id", "name"))
    assert [stored[id_] for id_ in ids] == names
    account = Account.objects.get(id=ids[0])
    assert (account.batch, account.status, account.created_at) == (1, Status.ACTIVE, now)
    # and the next ids come after those written
    with connection.cursor() as cursor:
        assert bulk.sqlite_reserve_ids(cursor, Account, 1) == [ids[-1] + 1]


@pytest.mark.django_db(transaction=True)
def test_sqlite_ids_are_reserved_only_under_a_transactions_write_lock():
    _on_sqlite()
    with connection.cursor() as cursor, pytest.raises(RuntimeError, match="write lock"):
        bulk.sqlite_reserve_ids(cursor, Account, 1)


@pytest.mark.django_db
def test_sqlite_rows_keep_amounts_exact_and_refuse_what_does_not_fit():
    _on_sqlite()
    document = DocumentFactory()
    line = {"document_id": document.id, "code": "VAT", "name": "VAT 20 %", "position": 0}
    with connection.cursor() as cursor:
        bulk.sqlite_insert_dicts(
            cursor,
            DocumentTax,
            [{**line, "rate": Decimal("20.0125"), "amount": Decimal("12345678.91")}],
            with_pk=False,
        )
        with pytest.raises(ValueError, match="more than 2 decimal places"):
            bulk.sqlite_insert_dicts(
                cursor,
                DocumentTax,
                [{**line, "position": 1, "rate": Decimal("20"), "amount": Decimal("1.005")}],
                with_pk=False,
            )
    (tax,) = DocumentTax.objects.filter(document=document)
    assert (tax.rate, tax.amount) == (Decimal("20.0125"), Decimal("12345678.91"))


@given(
    value=st.one_of(
        st.decimals(allow_nan=True, allow_infinity=True, places=3),
        st.decimals(min_value=-(10**17), max_value=10**17, places=2),
        st.integers(min_value=-(10**16), max_value=10**16),
    )
)
def test_sqlite_units_are_what_the_field_saves_or_its_refusal(value):
    # The bulk writer's fast path: the same integer units as
    # get_db_prep_save on SQLite, or the same refusal.
    sqlite = SimpleNamespace(vendor="sqlite")
    field = DocumentTax._meta.get_field("amount")

    def outcome(write):
        try:
            return write(value, sqlite)
        except Exception as exc:  # noqa: BLE001 (the refusal is what is compared)
            return type(exc), str(exc)

    assert outcome(field.sqlite_units) == outcome(field.get_db_prep_save)
