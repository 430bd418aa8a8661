"""Bill runs in known states for the page tests, made through the services
(a real run) or directly as rows (a run in a status the engine would take
time to reach)."""

import datetime
from decimal import Decimal

from billruns.models import BillRun, BillRunFailure, RunStatus
from billruns.services import bill_run_create, bill_run_execute
from invoices.models import Document, DocumentStatus, DocumentType
from tests.factories import AccountFactory, ChargeFactory, SubscriptionFactory

TARGET = datetime.date(2026, 2, 1)


def billed_account(**kwargs):
    account = AccountFactory(**kwargs)
    ChargeFactory(subscription=SubscriptionFactory(account=account))
    return account


def executed_run(*, clean=2, without_contact=0, user=None, **create_kwargs):
    """A run over fresh accounts, executed in this process: ``clean`` accounts
    are billed and ``without_contact`` fail for their missing bill-to contact."""
    for _ in range(clean):
        billed_account()
    for _ in range(without_contact):
        billed_account(bill_to_email="")
    run = bill_run_create(target_date=TARGET, created_by=user, enqueue=False, **create_kwargs)
    return bill_run_execute(run_id=run.pk)


_numbers = iter(range(90_000_000, 99_999_999))


def run_row(*, status=RunStatus.COMPLETED, failures=0, documents=0, user=None, **fields):
    """A run written directly in ``status``, with failure and invoice rows."""
    values = {
        "number": f"BR-{next(_numbers):08d}",
        "status": status,
        "target_date": TARGET,
        "invoice_date": TARGET,
        "created_by": user,
        "accounts_selected": failures + documents,
        "accounts_processed": failures + documents,
        "accounts_failed": failures,
        "invoices_count": documents,
        "has_errors": bool(failures),
        "totals": {"USD": f"{Decimal('100.00') * documents:.2f}"} if documents else {},
    }
    run = BillRun.objects.create(**{**values, **fields})
    for _ in range(failures):
        BillRunFailure.objects.create(
            bill_run=run,
            account=AccountFactory(bill_to_email=""),
            reason="Bill-to contact is missing",
        )
    for _ in range(documents):
        document_row(bill_run=run)
    return run


def document_row(*, bill_run=None, status=DocumentStatus.DRAFT, amount="100.00", **fields):
    account = fields.pop("account", None) or AccountFactory()
    amount = Decimal(amount)
    return Document.objects.create(
        document_type=fields.pop("document_type", DocumentType.INVOICE),
        number=f"INV{next(_numbers):08d}",
        account=account,
        bill_run=bill_run,
        status=status,
        currency=account.currency,
        amount=amount,
        balance=fields.pop("balance", amount),
        invoice_date=TARGET,
        due_date=TARGET + datetime.timedelta(days=30),
        **fields,
    )
