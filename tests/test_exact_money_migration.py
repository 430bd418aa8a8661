"""The migrations to exact money and protected items keep what was there:
amounts SQLite held as floating-point numbers become integer cents, and an
item whose subscription was deleted points again at its charge's one."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from customers.models import Charge
from invoices.models import Document, DocumentItem, Payment

DAY = datetime.date(2026, 1, 1)


def node(graph, app, suffix):
    return next(key for key in graph.nodes if key[0] == app and key[1].endswith(suffix))


def before(graph, key):
    """The migration of the same app that ``key`` follows."""
    return next(parent for parent in graph.node_map[key].parents if parent.key[0] == key[0]).key


@pytest.mark.django_db(transaction=True)
def test_existing_amounts_and_orphaned_items_survive_the_migration():
    executor = MigrationExecutor(connection)
    graph = executor.loader.graph
    customers = node(graph, "customers", "_exact_money")
    invoices = node(graph, "invoices", "_exact_money_and_protect")
    old = [before(graph, customers), before(graph, invoices)]
    executor.migrate(old)
    apps = executor.loader.project_state(old).apps
    amounts = [Decimal("19999999999999.98"), Decimal("100.00"), Decimal("-0.01")]

    account = apps.get_model("customers", "Account").objects.create(
        number="A00000001", name="Big", currency="USD", bill_cycle_day=1
    )
    Subscription = apps.get_model("customers", "Subscription")
    kept = Subscription.objects.create(number="S00000001", account=account, start_date=DAY)
    deleted = Subscription.objects.create(number="S00000002", account=account, start_date=DAY)
    charges = [
        apps.get_model("customers", "Charge").objects.create(
            subscription=kept,
            name=f"Charge {n}",
            charge_type="one_time",
            amount=amount,
            currency="USD",
            start_date=DAY,
        )
        for n, amount in enumerate(amounts)
    ]
    document = apps.get_model("invoices", "Document").objects.create(
        document_type="invoice",
        number="INV00000001",
        account=account,
        status="Posted",
        currency="USD",
        amount=amounts[0],
        balance=amounts[0] - Decimal("0.02"),
        invoice_date=DAY,
        due_date=DAY,
    )
    for n, (charge, amount) in enumerate(zip(charges, amounts, strict=True)):
        apps.get_model("invoices", "DocumentItem").objects.create(
            document=document,
            charge=charge,
            # The fault: the first item's subscription is deleted below.
            subscription=deleted if n == 0 else kept,
            charge_name=charge.name,
            service_start=DAY,
            service_end=DAY,
            amount=amount,
        )
    apps.get_model("invoices", "Payment").objects.create(
        document=document, amount=Decimal("0.02"), payment_date=DAY, method="card"
    )
    deleted.delete()

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert sorted(Charge.objects.values_list("amount", flat=True)) == sorted(amounts)
    document = Document.objects.get()
    assert (document.amount, document.balance) == (amounts[0], Decimal("19999999999999.96"))
    assert Payment.objects.get().amount == Decimal("0.02")
    items = DocumentItem.objects.select_related("subscription").order_by("id")
    assert [(item.amount, item.subscription.number) for item in items] == [
        (amount, "S00000001") for amount in amounts
    ]
