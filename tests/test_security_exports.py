"""Spreadsheet formula injection: every CSV and XLSX export neutralises a cell
whose text a spreadsheet would run as a formula, and keeps numbers numbers."""

import csv
import io
from decimal import Decimal

import django_tables2
import openpyxl
import pytest

from billruns.models import BillRunFailure
from core.tables import BaseTable, spreadsheet_safe
from tests.factories import AccountFactory
from tests.view_data import document_row, run_row

pytestmark = pytest.mark.django_db

HOSTILE = ['=HYPERLINK("http://evil")', "@SUM(1)", "+1+cmd|' /C calc'!A0", "-2+3", "\t=1", "\r=1"]


def neutralised(text):
    return "'" + text


def csv_cells(response):
    assert response["Content-Type"].startswith("text/csv")
    return [cell for row in csv.reader(io.StringIO(response.content.decode())) for cell in row]


def xlsx_cells(response):
    book = openpyxl.load_workbook(io.BytesIO(response.content))
    sheet = book.active
    cells = [cell for row in sheet.iter_rows() for cell in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"], "a cell is a formula"
    return [cell.value for cell in cells]


@pytest.fixture
def hostile_data():
    """Accounts with hostile names, with a run that invoiced and failed them."""
    accounts = [AccountFactory(name=name) for name in HOSTILE]
    run = run_row()
    for account in accounts:
        document_row(bill_run=run, account=account, amount="-55.00")
        BillRunFailure.objects.create(bill_run=run, account=account, reason=account.name)
    return run


def export_urls(run):
    return [
        ("/billing/bill-runs/", {}),
        ("/billing/invoices/", {}),
        ("/billing/accounts/", {}),
        (f"/billing/bill-runs/{run.number}/", {"tab": "invoices"}),
        (f"/billing/bill-runs/{run.number}/", {"tab": "failures"}),
    ]


@pytest.mark.parametrize("value", HOSTILE + ["=1", "+", "-", "@", "-1+2", "- 5", "-55.00abc"])
def test_text_a_spreadsheet_would_run_gets_a_quote(value):
    assert spreadsheet_safe(value) == neutralised(value)


@pytest.mark.parametrize(
    "value",
    ["-55.00", "+3", "-1,234.56", "Acme", "a=b", "", " =x", Decimal("-55.00"), -3, None, 1.5],
)
def test_plain_numbers_and_harmless_text_are_kept(value):
    assert spreadsheet_safe(value) == value


def test_csv_exports_neutralise_formulas(client, superuser, hostile_data):
    client.force_login(superuser)
    for url, params in export_urls(hostile_data):
        cells = csv_cells(client.get(url, {**params, "_export": "csv"}))

        for name in HOSTILE:
            if url.endswith("/bill-runs/"):
                continue  # the run list shows no account names
            assert neutralised(name) in cells, (url, params, name)
            assert name not in cells, (url, params, name)
        assert not [c for c in cells if c and c[0] in "=+@\t\r"], (url, params)


def test_xlsx_exports_neutralise_formulas_and_keep_amounts_numbers(client, superuser, hostile_data):
    client.force_login(superuser)
    for url, params in export_urls(hostile_data):
        cells = xlsx_cells(client.get(url, {**params, "_export": "xlsx"}))

        texts = [c for c in cells if isinstance(c, str)]
        assert not [c for c in texts if c and c[0] in "=+-@\t\r\n"], (url, params)
        if not url.endswith("/bill-runs/"):
            for name in HOSTILE:
                # XML stores a carriage return as a line feed
                assert neutralised(name).replace("\r", "\n") in texts, (url, params, name)
        if params.get("tab") == "invoices" or url.endswith("/invoices/"):
            assert -55 in cells, "a negative amount is a number, not text"


def test_negative_amounts_stay_plain_in_csv(client, superuser, hostile_data):
    client.force_login(superuser)

    cells = csv_cells(client.get("/billing/invoices/", {"_export": "csv"}))

    assert "-55.00" in cells
    assert "'-55.00" not in cells


def test_a_username_and_run_totals_in_the_run_list_export_are_neutralised(
    client, django_user_model, superuser
):
    creator = django_user_model.objects.create_user("@SUM(1)", password="pw")
    run_row(user=creator, totals={"USD": "-55.00"})
    client.force_login(superuser)

    cells = csv_cells(client.get("/billing/bill-runs/", {"_export": "csv"}))

    assert "'@SUM(1)" in cells
    assert "@SUM(1)" not in cells
    assert "USD -55.00" in cells


def project_tables():
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    import billruns.schedule_views  # noqa: F401  (tables defined beside their views)
    import billruns.views  # noqa: F401
    import customers.views  # noqa: F401
    import invoices.views  # noqa: F401

    roots = ("billruns.", "core.", "customers.", "invoices.", "notifications.", "billing_site.")
    return [t for t in subclasses(django_tables2.Table) if t.__module__.startswith(roots)]


def test_every_table_of_the_project_exports_through_the_safe_base():
    tables = project_tables()

    assert tables
    assert [t.__qualname__ for t in tables if not issubclass(t, BaseTable)] == []
