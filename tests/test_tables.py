"""The busiest tables write their body rows in Python (core.tables.PythonRowsMixin,
issue 12 item 7): cell for cell what django-tables2's own loop in
tables/table.html writes for the same table. Every table's export reads its
values the same way (BaseTable.as_values): the values django-tables2 exports."""

import re

import django_tables2 as tables
import pytest
from django.test import RequestFactory

from billruns.models import RunStatus, Schedule
from billruns.schedule_views import ScheduleListView, ScheduleTable
from billruns.tables import BillRunTable, FailureTable, RunDocumentsTable
from billruns.views import runs_for_pages
from core.tables import BaseTable, PythonRowsMixin, spreadsheet_safe
from customers.models import Account
from customers.tables import AccountTable
from invoices.models import Document, DocumentStatus, DocumentType, Payment, PaymentMethod
from invoices.tables import DocumentTable, PaymentTable
from tests.factories import AccountFactory, SubscriptionFactory
from tests.view_data import TARGET, document_row, run_row

pytestmark = pytest.mark.django_db


def body_rows(html):
    """The <tr> elements of a table body, without the whitespace between tags."""
    body = re.search(r"<tbody[^>]*>(.*)</tbody>", html, re.S).group(1)
    return re.findall(r"<tr .*?</tr>", re.sub(r">\s+<", "><", body), re.S)


def rows_both_ways(table_class, data):
    """(the product's rows, django-tables2's rows): the rows a table writes
    (in Python, and by tables/table.html, which must agree) and the rows of
    django-tables2's own template, each from a table of its own (a table
    counts its rows for their odd/even class)."""
    request = RequestFactory().get("/")
    product = table_class(data, template_name="tables/table.html")
    written = body_rows(product.as_html(request))
    if issubclass(table_class, PythonRowsMixin):
        joined = "".join(table_class(data).paginated_rows_html())
        in_python = body_rows(f"<tbody>{joined}</tbody>")
        assert [row for row in in_python if 'class="detail-row"' not in row] == written
    reference = table_class(data, template_name="django_tables2/table.html")
    return written, body_rows(reference.as_html(request))


def test_the_run_lists_rows_are_the_rows_django_tables2_writes(superuser, viewer):
    failed = run_row(failures=2, documents=1, user=viewer)
    run_row(status=RunStatus.ERROR, error_message="Out of <memory>", created_by=None)
    run_row(status=RunStatus.POSTED, documents=2, totals={"USD": "10.00", "EUR": "-5.5"})
    run_row(totals={"USD": "1.00", "EUR": "2.00", "GBP": "3.00", "JPY": "4"}, user=superuser)
    run_row(retry_of=failed, batches=[2, 3], bill_cycle_days=[15])
    account = AccountFactory(name="Acme & <Sons>")
    with_subscriptions = run_row(account=account)
    with_subscriptions.subscriptions.add(SubscriptionFactory(account=account))

    written, reference = rows_both_ways(BillRunTable, BillRunTable.Meta.model.objects.all())

    assert len(written) == 6
    assert written == reference


def test_a_runs_document_and_failure_rows_are_the_rows_django_tables2_writes():
    run = run_row(failures=2, documents=3)
    document_row(bill_run=run, document_type=DocumentType.CREDIT_MEMO, amount="12345.60")
    subscription = SubscriptionFactory()
    run.failures.create(account=subscription.account, subscription=subscription, reason="<why>")

    documents = rows_both_ways(RunDocumentsTable, Document.objects.filter(bill_run=run))
    failures = rows_both_ways(FailureTable, run.failures.select_related("account", "subscription"))

    assert len(documents[0]) == 4
    assert documents[0] == documents[1]
    assert len(failures[0]) == 3
    assert failures[0] == failures[1]


class EveryKindOfCell(PythonRowsMixin, BaseTable):
    """Cells the product's fast tables do not all have: a choice's label, a
    column's default, record-computed td attributes, a link, a relation, a
    date not localized, render methods naming a row or an argument no cell has."""

    number = tables.Column(linkify=lambda record: f"/documents/{record.number}/")
    document_type = tables.Column(attrs={"td": {"data-type": lambda record: record.document_type}})
    account = tables.Column(accessor="account__name")
    bill_run = tables.Column(accessor="bill_run__number", default="no run")
    invoice_date = tables.Column(localize=False)
    amount = tables.Column()
    currency = tables.Column()

    class Meta(BaseTable.Meta):
        model = Document
        fields = ()
        sequence = (
            "number",
            "document_type",
            "account",
            "bill_run",
            "invoice_date",
            "amount",
            "currency",
        )
        row_attrs = {"data-number": lambda record: record.number}

    def render_amount(self, value, bound_row):
        return f"{value} on {bound_row.record.number}"

    def render_currency(self, value, unknown):
        return "never called"


def test_any_column_is_written_as_django_tables2_writes_it():
    document_row(document_type=DocumentType.CREDIT_MEMO, account=AccountFactory(name="A & <B>"))
    document_row(bill_run=run_row())

    written, reference = rows_both_ways(EveryKindOfCell, Document.objects.order_by("id"))

    assert written == reference
    assert 'data-type="credit_memo">Credit memo</td>' in written[0]
    assert ">no run</td>" in written[0]
    assert "A &amp; &lt;B&gt;" in written[0]
    assert "100.00 on INV" in written[1]
    assert ">None</td>" in written[1]  # a render method naming an argument no cell has


def test_each_run_row_is_followed_by_its_detail_row(viewer):
    first, second = run_row(user=viewer), run_row(user=viewer)

    rows = BillRunTable(BillRunTable.Meta.model.objects.order_by("-id")).paginated_rows_html()

    assert len(rows) == 4
    assert f'data-number="{second.number}"' in rows[0]
    assert f'id="run-details-{second.pk}"' in rows[1]
    assert f'data-number="{first.number}"' in rows[2]
    assert f'id="run-details-{first.pk}"' in rows[3]


@pytest.fixture
def every_table(superuser):
    """Each table of the product with rows to show."""
    schedule = Schedule.objects.create(name="=Monthly", owner=superuser)
    run = run_row(failures=2, documents=2, user=superuser, schedule=schedule)
    run_row(status=RunStatus.POSTED, totals={"USD": "-55.00", "EUR": "1.50"}, has_errors=True)
    document = document_row(bill_run=run, status=DocumentStatus.POSTED)
    document_row(document_type=DocumentType.CREDIT_MEMO, account=AccountFactory(name="@SUM(1)"))
    Payment.objects.create(
        document=document,
        amount="10.00",
        payment_date=TARGET,
        method=PaymentMethod.BANK_TRANSFER,
        created_by=superuser,
    )
    AccountFactory(bill_to_email="")
    return [
        (BillRunTable, runs_for_pages()),
        (FailureTable, run.failures.select_related("account", "subscription")),
        (RunDocumentsTable, Document.objects.filter(bill_run=run).select_related("account")),
        (DocumentTable, Document.objects.select_related("account", "bill_run")),
        (PaymentTable, Payment.objects.select_related("created_by")),
        (AccountTable, Account.objects.all()),
        (ScheduleTable, ScheduleListView().get_queryset()),
        (EveryKindOfCell, Document.objects.all()),
    ]


def test_every_tables_rows_are_the_rows_django_tables2_writes(every_table):
    for table_class, data in every_table:
        written, reference = rows_both_ways(table_class, data)

        assert written, table_class.__name__
        assert written == reference, table_class.__name__


def values_django_tables2_exports(table):
    """What django-tables2's own Table.as_values gives, neutralised as BaseTable's."""
    return [[spreadsheet_safe(value) for value in row] for row in tables.Table.as_values(table)]


def test_every_tables_export_holds_the_values_django_tables2_exports(every_table):
    for table_class, data in every_table:
        exported = list(table_class(data).as_values())

        assert len(exported) > 1, table_class.__name__
        assert exported == values_django_tables2_exports(table_class(data)), table_class.__name__
