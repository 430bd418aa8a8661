"""What one account owes in a bill run: pure computation, no database writes.

The chunk processor (billruns.generation) loads a chunk's accounts,
subscriptions and charges in bulk and asks ``bill_account`` for each account;
the result is either failures or the items of one document.
"""

import datetime
from dataclasses import dataclass, field
from decimal import Decimal

from billruns import periods
from customers import pricing
from customers.models import PERIOD_MONTHS, ChargeType
from invoices.models import Document, DocumentItem, DocumentType

MISSING_CONTACT = "Bill-to contact is missing"
# The smallest total a document cannot hold (10^16 with cents).
DOCUMENT_AMOUNT_LIMIT = Document._meta.get_field("amount").limit
# The largest quantity an item holds (below 10^12): a charge's quantity
# column holds more.
ITEM_QUANTITY_LIMIT = DocumentItem._meta.get_field("quantity").limit


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
    quantity: Decimal
    unit: str = ""
    unit_price: Decimal | None = None
    rating: str = ""


@dataclass(slots=True)
class Usage:
    """What a chunk knows of its usage charges before billing them, read in
    bulk by billruns.generation: each due piece's summed quantity, keyed by
    ``(charge id, piece start)`` (0 when absent), and each pricing's model
    and tiers."""

    quantities: dict = field(default_factory=dict)
    pricings: dict = field(default_factory=dict)  # id -> (model, [pricing.Tier])


NO_USAGE = Usage()


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
    """The due periods of a recurring or one-time charge, each with its
    amount: the exact price (amount x quantity), prorated, rounded once."""
    price = periods.price(charge.amount, charge.quantity)
    if charge.charge_type == ChargeType.ONE_TIME:
        return periods.one_time_period(
            amount=price,
            start=charge.start_date,
            charged_through=charge.charged_through_date,
            target=target_date,
        )
    return periods.recurring_periods(
        amount=price,
        period_months=PERIOD_MONTHS[charge.period],
        bill_cycle_day=bill_cycle_day,
        start=charge.start_date,
        end=charge.end_date,
        charged_through=charge.charged_through_date,
        target=target_date,
    )


def usage_pieces(charge, *, bill_cycle_day: int, target_date: datetime.date):
    """The due pieces ``(start, end)`` of a usage charge: ended by the target date."""
    return periods.usage_pieces(
        period_months=PERIOD_MONTHS[charge.period],
        bill_cycle_day=bill_cycle_day,
        start=charge.start_date,
        end=charge.end_date,
        charged_through=charge.charged_through_date,
        target=target_date,
    )


def _amount_rating(charge, period) -> str:
    """How a recurring or one-time item's amount was made, when there is
    more to it than the price: ``3 × 10.00 × 17/31 = 16.45``."""
    if charge.quantity == 1 and not period.is_cut:
        return ""
    parts = [f"{charge.amount:,.2f}"]
    if charge.quantity != 1:
        parts.insert(0, pricing.plain(charge.quantity))
    if period.is_cut:
        parts.append(f"{(period.end - period.start).days}/{period.cell_days}")
    return f"{' × '.join(parts)} = {period.amount:,.2f}"


def _charge_items(charge, subscription_id, *, bill_cycle_day, target_date, usage):
    if charge.charge_type == ChargeType.USAGE:
        model, tiers = usage.pricings[charge.pricing_id]
        for start, end in usage_pieces(
            charge, bill_cycle_day=bill_cycle_day, target_date=target_date
        ):
            quantity = usage.quantities.get((charge.id, start), pricing.ZERO)
            rating = pricing.rate(model=model, tiers=tiers, quantity=quantity, unit=charge.unit)
            yield DraftItem(
                charge_id=charge.id,
                subscription_id=subscription_id,
                charge_name=charge.name,
                start=start,
                end=end,
                amount=rating.amount,
                previous_charged_through=charge.charged_through_date,
                quantity=quantity,
                unit=charge.unit,
                rating=rating.explanation,
            )
        return
    if charge.quantity >= ITEM_QUANTITY_LIMIT:
        raise AccountComputationError(
            f"The quantity {pricing.plain(charge.quantity)} of charge {charge.number} is more "
            f"than an item can bill (below {ITEM_QUANTITY_LIMIT:,})"
        )
    for period in due_periods(charge, bill_cycle_day=bill_cycle_day, target_date=target_date):
        yield DraftItem(
            charge_id=charge.id,
            subscription_id=subscription_id,
            charge_name=charge.name,
            start=period.start,
            end=period.end,
            amount=period.amount,
            previous_charged_through=charge.charged_through_date,
            quantity=charge.quantity,
            unit_price=charge.amount,
            rating=_amount_rating(charge, period),
        )


def bill_account(
    account,
    subscriptions,
    charges_by_subscription,
    *,
    target_date,
    usage=NO_USAGE,
    exclude=frozenset(),
) -> AccountResult:
    """Everything ``account`` owes up to ``target_date`` over ``subscriptions``,
    but the charges of the types in ``exclude``; ``usage`` holds the usage
    charges' quantities and pricings (``Usage``).

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
            if charge.charge_type in exclude:
                continue  # stays due for a later run
            try:
                result.items.extend(
                    _charge_items(
                        charge,
                        subscription.id,
                        bill_cycle_day=account.bill_cycle_day,
                        target_date=target_date,
                        usage=usage,
                    )
                )
            except (ArithmeticError, ValueError) as exc:  # e.g. "year 10000 is out of range"
                raise AccountComputationError(
                    f"Could not compute the service periods of charge {charge.name}: {exc}"
                ) from exc
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
