"""What one account owes in a bill run: pure computation, no database writes.

The chunk processor (billruns.generation) loads a chunk's accounts,
subscriptions and charges in bulk and asks ``bill_account`` for each account;
the result is either failures or the items of one document.
"""

import datetime
from dataclasses import dataclass, field
from decimal import Decimal

from billruns import periods
from customers.models import PERIOD_MONTHS, ChargeType
from invoices.models import Document, DocumentType

MISSING_CONTACT = "Bill-to contact is missing"
# The smallest total a document cannot hold (10^16 with cents).
DOCUMENT_AMOUNT_LIMIT = Document._meta.get_field("amount").limit


def document_too_large_reason(total):
    largest = DOCUMENT_AMOUNT_LIMIT - Decimal("0.01")
    return (
        f"The document total {total:,.2f} exceeds the largest amount a document "
        f"can hold ({largest:,.2f} in absolute value)"
    )


class AccountComputationError(Exception):
    """What one account owes could not be computed (a date past the end of
    the calendar, say); the message says why, for a clerk. The account
    fails alone."""


def currency_mismatch_reason(charge_currency, account_currency):
    return f"Charge currency {charge_currency} differs from account currency {account_currency}"


@dataclass(slots=True)
class DraftItem:
    charge_id: int
    subscription_id: int
    charge_name: str
    start: datetime.date
    end: datetime.date  # exclusive
    amount: Decimal
    previous_charged_through: datetime.date | None


@dataclass(slots=True)
class AccountFailure:
    subscription_id: int | None
    reason: str


@dataclass(slots=True)
class AccountResult:
    account_id: int
    failures: list[AccountFailure] = field(default_factory=list)
    items: list[DraftItem] = field(default_factory=list)
    due_date: datetime.date | None = None

    @property
    def total(self) -> Decimal:
        return sum((item.amount for item in self.items), Decimal("0.00"))

    def document_type(self, *, advanced_ar_settlement: bool) -> str:
        if self.total < 0 and advanced_ar_settlement:
            return DocumentType.CREDIT_MEMO
        return DocumentType.INVOICE

    def document_amount(self, *, advanced_ar_settlement: bool) -> Decimal:
        total = self.total
        return -total if total < 0 and advanced_ar_settlement else total


def due_periods(charge, *, bill_cycle_day: int, target_date: datetime.date):
    if charge.charge_type == ChargeType.ONE_TIME:
        return periods.one_time_period(
            amount=charge.amount,
            start=charge.start_date,
            charged_through=charge.charged_through_date,
            target=target_date,
        )
    return periods.recurring_periods(
        amount=charge.amount,
        period_months=PERIOD_MONTHS[charge.period],
        bill_cycle_day=bill_cycle_day,
        start=charge.start_date,
        end=charge.end_date,
        charged_through=charge.charged_through_date,
        target=target_date,
    )


def bill_account(account, subscriptions, charges_by_subscription, *, target_date) -> AccountResult:
    """Everything ``account`` owes up to ``target_date`` over ``subscriptions``.

    An account without a bill-to contact gets that one failure and nothing
    else; otherwise each subscription with a charge in a foreign currency
    gets its own failure, and any failure means nothing is billed.
    """
    result = AccountResult(account_id=account.id)
    if not account.bill_to_email:
        result.failures.append(AccountFailure(None, MISSING_CONTACT))
        return result
    for subscription in subscriptions:
        foreign = sorted(
            {
                charge.currency
                for charge in charges_by_subscription.get(subscription.id, ())
                if charge.currency != account.currency
            }
        )
        if foreign:
            result.failures.append(
                AccountFailure(
                    subscription.id, currency_mismatch_reason(", ".join(foreign), account.currency)
                )
            )
    if result.failures:
        return result
    for subscription in subscriptions:
        for charge in charges_by_subscription.get(subscription.id, ()):
            try:
                due = due_periods(
                    charge, bill_cycle_day=account.bill_cycle_day, target_date=target_date
                )
            except (ArithmeticError, ValueError) as exc:  # e.g. "year 10000 is out of range"
                raise AccountComputationError(
                    f"Could not compute the service periods of charge {charge.name}: {exc}"
                ) from exc
            for period in due:
                result.items.append(
                    DraftItem(
                        charge_id=charge.id,
                        subscription_id=subscription.id,
                        charge_name=charge.name,
                        start=period.start,
                        end=period.end,
                        amount=period.amount,
                        previous_charged_through=charge.charged_through_date,
                    )
                )
    total = result.total
    if abs(total) >= DOCUMENT_AMOUNT_LIMIT:
        # Refused here, for this account alone: the database would refuse the
        # whole chunk's write ("numeric field overflow").
        result.failures.append(AccountFailure(None, document_too_large_reason(total)))
        result.items.clear()
    return result


ONE_DAY = periods.ONE_DAY


def payment_term(account) -> datetime.timedelta:
    return datetime.timedelta(days=account.payment_term_days)


def due_date(account, invoice_date: datetime.date) -> datetime.date:
    """The invoice date plus the account's payment term."""
    try:
        return invoice_date + payment_term(account)
    except OverflowError as exc:  # past 9999-12-31
        raise AccountComputationError(
            f"Could not compute the due date: invoice date {invoice_date} plus the payment "
            f"term of {account.payment_term_days} days is past the end of the calendar ({exc})"
        ) from exc
