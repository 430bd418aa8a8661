"""What one account owes in a bill run: pure computation, no database writes.

The chunk processor (billruns.generation) loads a chunk's accounts,
subscriptions and charges in bulk and asks ``bill_account`` for each account;
the result is either failures or the items of one document.

A charge's plan (``charge_plan``) says what a run does with it: the due
pieces at the terms in effect on each piece's first day (its price
segments cut them), and for a charge whose changes made billed items stale
the adjustments that correct them (BILLING_RULES.md, Subscription changes
and adjustments; the stale rule is ``stale_from``). The plan needs no
usage; the chunk reads the quantities every plan of the chunk asks for
(``usage_ranges``) in one query, and ``bill_account`` prices the plans.
"""

import datetime
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

from billruns import periods
from customers import pricing
from customers.models import PERIOD_MONTHS, ChargeType
from invoices import taxes
from invoices.models import Document, DocumentItem, DocumentType, ItemKind

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
    quantity: Decimal | None
    unit: str = ""
    unit_price: Decimal | None = None
    rating: str = ""
    kind: str = ItemKind.CHARGE
    adjusts_id: int | None = None  # an adjustment: the charge item it corrects
    reverses_whole: bool = False  # an adjustment from its item's first day
    pricing_id: int | None = None


@dataclass(slots=True)
class Usage:
    """What a chunk knows of its usage charges before billing them, read in
    bulk by billruns.generation: the summed quantity of each range
    ``(charge id, start, end)`` its plans ask for (``usage_ranges``; 0 when
    absent), and each pricing's model and tiers."""

    quantities: dict = field(default_factory=dict)
    pricings: dict = field(default_factory=dict)  # id -> (model, [pricing.Tier])
    # The usage charges' plans the ranges came from (charge id -> ChargePlan),
    # so that bill_account does not compute them again.
    plans: dict = field(default_factory=dict)


NO_USAGE = Usage()


class Terms(NamedTuple):
    """What prices a charge on a day: a recurring or one-time charge's amount
    and quantity, a usage charge's pricing. (A named tuple: one is made per
    piece billed, and a frozen dataclass's ``__init__`` cost several times
    more.)"""

    amount: Decimal | None
    quantity: Decimal | None
    pricing_id: int | None


@dataclass(slots=True)
class LiveItem:
    """A live charge item of a changed charge, with its live adjustment."""

    id: int
    start: datetime.date
    end: datetime.date  # exclusive
    amount: Decimal
    terms: Terms
    adjusted_from: datetime.date | None = None  # its live adjustment's start
    adjustment_amount: Decimal = Decimal("0.00")

    @property
    def covers_until(self) -> datetime.date:
        return self.end if self.adjusted_from is None else self.adjusted_from

    @property
    def net(self) -> Decimal:
        return self.amount + self.adjustment_amount


@dataclass(slots=True)
class History:
    """What a chunk read of its charges' changes: each changed charge's
    price segments ``[(effective date, Terms)]`` in order, and for each
    charge whose billed items a change may have made stale, its live charge
    items (``LiveItem``). Charges absent from ``live`` bill from their
    charged-through date, as they always did."""

    prices: dict = field(default_factory=dict)
    live: dict = field(default_factory=dict)


NO_HISTORY = History()


@dataclass(slots=True)
class Adjustment:
    item: LiveItem
    start: datetime.date  # r: the day the item is stale from
    end: datetime.date  # c: the end of what it covered
    cell: tuple[datetime.date, datetime.date]  # the item's grid cell


@dataclass(slots=True)
class ChargePlan:
    """What a run does with one charge: its due pieces ``(p, q, cell days,
    Terms)``, the adjustments of its stale items, and its charged-through
    date afterwards (``None`` with ``covered=False``: it covers nothing)."""

    pieces: list = field(default_factory=list)
    adjustments: list = field(default_factory=list)
    charged_through: datetime.date | None = None


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
    # Each billed charge's charged-through date after this run.
    charged_through: dict = field(default_factory=dict)
    # The document's tax lines (invoices.taxes.TaxLine), in the order of the
    # account's tax codes.
    taxes: list = field(default_factory=list)

    @property
    def subtotal(self) -> Decimal:
        return sum((item.amount for item in self.items), Decimal("0.00"))

    @property
    def total(self) -> Decimal:
        """The subtotal plus the tax lines: what decides the document's type."""
        return self.subtotal + sum((line.amount for line in self.taxes), Decimal("0.00"))

    def document_type(self, *, advanced_ar_settlement: bool) -> str:
        if self.total < 0 and advanced_ar_settlement:
            return DocumentType.CREDIT_MEMO
        return DocumentType.INVOICE

    def document_amount(self, *, advanced_ar_settlement: bool) -> Decimal:
        total = self.total
        return -total if total < 0 and advanced_ar_settlement else total


def own_terms(charge) -> Terms:
    return Terms(charge.amount, charge.quantity, charge.pricing_id)


def terms_on(charge, prices, day: datetime.date, own: Terms | None = None) -> Terms:
    """The terms in effect on ``day``: the last price segment from that day
    or before (two changes of one day: the later), else the charge's own
    (``own``, when the caller has made them already)."""
    terms = own if own is not None else own_terms(charge)
    for effective, segment in prices:
        if effective > day:
            break
        terms = segment
    return terms


def _same_terms(charge, now: Terms, billed: Terms) -> bool:
    if charge.charge_type == ChargeType.USAGE:
        return now.pricing_id == billed.pricing_id
    return now.amount == billed.amount and now.quantity == billed.quantity


def stale_from(charge, prices, item: LiveItem) -> datetime.date | None:
    """The first day on which a live charge item that covers ``[p, c)`` no
    longer matches the charge as it is now (BILLING_RULES.md, Subscription
    changes): ``p`` if the terms in effect on ``p`` differ from the item's
    or the charge has ended by ``p``; else the first end or price-change
    date inside ``(p, c)``; None when it still matches (or covers nothing)."""
    p, c = item.start, item.covers_until
    if c <= p:
        return None
    end = charge.end_date
    if (end is not None and end <= p) or not _same_terms(
        charge, terms_on(charge, prices, p), item.terms
    ):
        return p
    inside = [effective for effective, _ in prices if p < effective < c]
    if end is not None and p < end < c:
        inside.append(end)
    return min(inside) if inside else None


def charge_plan(charge, *, bill_cycle_day: int, target_date: datetime.date, history=NO_HISTORY):
    """What a run with ``target_date`` does with ``charge`` (see ChargePlan)."""
    prices = history.prices.get(charge.id, ())
    plan = ChargePlan(charged_through=charge.charged_through_date)
    if charge.charge_type == ChargeType.ONE_TIME:
        # A one-time charge is never repriced; removed (end = start), it
        # never bills.
        if charge.end_date is None or charge.end_date > charge.start_date:
            for period in periods.one_time_period(
                amount=Decimal(0),
                start=charge.start_date,
                charged_through=charge.charged_through_date,
                target=target_date,
            ):
                plan.pieces.append((period.start, period.end, 1, own_terms(charge)))
                plan.charged_through = period.end
        return plan
    months = PERIOD_MONTHS[charge.period]
    in_arrears = charge.charge_type == ChargeType.USAGE
    cuts = tuple(sorted({effective for effective, _ in prices}))
    live = history.live.get(charge.id)
    if live is None:
        # Billed without gaps from its start to its charged-through date.
        own = own_terms(charge)
        for p, q, cell_days in periods.pieces(
            period_months=months,
            bill_cycle_day=bill_cycle_day,
            start=charge.start_date,
            end=charge.end_date,
            charged_through=charge.charged_through_date,
            target=target_date,
            in_arrears=in_arrears,
            cuts=cuts,
        ):
            plan.pieces.append((p, q, cell_days, terms_on(charge, prices, p, own)))
            plan.charged_through = q
        return plan

    stale = [(item, stale_from(charge, prices, item)) for item in live]
    stale = [(item, r) for item, r in stale if r is not None]
    covered = {item.id: (item.start, item.covers_until) for item in live}
    if stale and target_date >= min(r for _, r in stale):
        for item, r in stale:
            plan.adjustments.append(
                Adjustment(
                    item,
                    r,
                    item.covers_until,
                    periods.cell_holding(
                        item.start,
                        period_months=months,
                        bill_cycle_day=bill_cycle_day,
                        start=charge.start_date,
                    ),
                )
            )
            covered[item.id] = (item.start, r)
    spans = sorted((p, c) for p, c in covered.values() if c > p)
    for p, q, cell_days in periods.pieces(
        period_months=months,
        bill_cycle_day=bill_cycle_day,
        start=charge.start_date,
        end=charge.end_date,
        charged_through=None,
        target=target_date,
        in_arrears=in_arrears,
        cuts=cuts,
    ):
        if not any(a <= p < b for a, b in spans):
            plan.pieces.append((p, q, cell_days, terms_on(charge, prices, p)))
            spans.append((p, q))
    plan.charged_through = max((b for _, b in spans), default=None)
    return plan


def usage_ranges(charge, plan: ChargePlan):
    """The ``(charge id, start, end)`` ranges whose usage ``plan`` rates:
    a usage charge's due pieces, and the part ``[p, r)`` an adjustment of a
    usage item prices again."""
    if charge.charge_type != ChargeType.USAGE:
        return []
    ranges = [(charge.id, p, q) for p, q, _, _ in plan.pieces]
    ranges += [
        (charge.id, adjustment.item.start, adjustment.start)
        for adjustment in plan.adjustments
        if adjustment.start > adjustment.item.start
    ]
    return ranges


def _price(terms: Terms) -> Decimal:
    return periods.price(terms.amount, terms.quantity)


def _amount_rating(terms: Terms, days: int, cell_days: int, amount: Decimal) -> str:
    """How a recurring or one-time item's amount was made, when there is
    more to it than the price: ``3 × 10.00 × 17/31 = 16.45``."""
    cut = days != cell_days
    if terms.quantity == 1 and not cut:
        return ""
    parts = [f"{terms.amount:,.2f}"]
    if terms.quantity != 1:
        parts.insert(0, pricing.plain(terms.quantity))
    if cut:
        parts.append(f"{days}/{cell_days}")
    return f"{' × '.join(parts)} = {amount:,.2f}"


def _rate(usage, terms: Terms, quantity, unit):
    model, tiers = usage.pricings[terms.pricing_id]
    return pricing.rate(model=model, tiers=tiers, quantity=quantity, unit=unit)


def _charge_items(charge, subscription_id, plan: ChargePlan, usage):
    """The items of ``plan``: its adjustments first, then its pieces."""
    previous = charge.charged_through_date
    usage_charge = charge.charge_type == ChargeType.USAGE
    for adjustment in plan.adjustments:
        item, r = adjustment.item, adjustment.start
        if r == item.start:
            cost, how = Decimal("0.00"), "0.00"
        elif usage_charge:
            quantity = usage.quantities.get((charge.id, item.start, r), pricing.ZERO)
            rating = _rate(usage, item.terms, quantity, charge.unit)
            cost, how = rating.amount, f"({rating.explanation})"
        else:
            cell_start, cell_end = adjustment.cell
            cell_days = (cell_end - cell_start).days
            cost = periods.prorate(_price(item.terms), (r - item.start).days, cell_days)
            how = f"{_price(item.terms):,.2f} × {(r - item.start).days}/{cell_days}"
        amount = cost - item.net
        yield DraftItem(
            charge_id=charge.id,
            subscription_id=subscription_id,
            charge_name=charge.name,
            start=r,
            end=adjustment.end,
            amount=amount,
            previous_charged_through=previous,
            quantity=None,
            unit=charge.unit,
            rating=f"{how} − {item.net:,.2f} = {amount:,.2f}",
            kind=ItemKind.ADJUSTMENT,
            adjusts_id=item.id,
            reverses_whole=r == item.start,
        )
    for p, q, cell_days, terms in plan.pieces:
        if usage_charge:
            quantity = usage.quantities.get((charge.id, p, q), pricing.ZERO)
            rating = _rate(usage, terms, quantity, charge.unit)
            yield DraftItem(
                charge_id=charge.id,
                subscription_id=subscription_id,
                charge_name=charge.name,
                start=p,
                end=q,
                amount=rating.amount,
                previous_charged_through=previous,
                quantity=quantity,
                unit=charge.unit,
                rating=rating.explanation,
                pricing_id=terms.pricing_id,
            )
            continue
        if terms.quantity >= ITEM_QUANTITY_LIMIT:
            raise AccountComputationError(
                f"The quantity {pricing.plain(terms.quantity)} of charge {charge.number} is "
                f"more than an item can bill (below {ITEM_QUANTITY_LIMIT:,})"
            )
        days = (q - p).days
        amount = periods.prorate(_price(terms), days, cell_days)
        yield DraftItem(
            charge_id=charge.id,
            subscription_id=subscription_id,
            charge_name=charge.name,
            start=p,
            end=q,
            amount=amount,
            previous_charged_through=previous,
            quantity=terms.quantity,
            unit_price=terms.amount,
            rating=_amount_rating(terms, days, cell_days, amount),
        )


def _plan_or_fail(charge, *, bill_cycle_day, target_date, history):
    try:
        return charge_plan(
            charge, bill_cycle_day=bill_cycle_day, target_date=target_date, history=history
        )
    except (ArithmeticError, ValueError) as exc:  # e.g. "year 10000 is out of range"
        raise AccountComputationError(
            f"Could not compute the service periods of charge {charge.name}: {exc}"
        ) from exc


def account_usage_ranges(
    account, subscriptions, charges_by_subscription, *, target_date, exclude, history, plans
):
    """The usage ranges ``bill_account`` will rate for ``account`` (the chunk
    sums them all in one query first); each usage charge's plan is kept in
    ``plans``. An account whose plans cannot be computed asks for none: it
    fails in ``bill_account``."""
    ranges = []
    try:
        for subscription in subscriptions:
            for charge in charges_by_subscription.get(subscription.id, ()):
                if charge.charge_type != ChargeType.USAGE or charge.charge_type in exclude:
                    continue
                plan = _plan_or_fail(
                    charge,
                    bill_cycle_day=account.bill_cycle_day,
                    target_date=target_date,
                    history=history,
                )
                plans[charge.id] = plan
                ranges += usage_ranges(charge, plan)
    except AccountComputationError:
        return []
    return ranges


def bill_account(
    account,
    subscriptions,
    charges_by_subscription,
    *,
    target_date,
    usage=NO_USAGE,
    exclude=frozenset(),
    history=NO_HISTORY,
    rates=(),
) -> AccountResult:
    """Everything ``account`` owes up to ``target_date`` over ``subscriptions``,
    but the charges of the types in ``exclude``; ``usage`` holds the usage
    charges' quantities and pricings (``Usage``), ``history`` the changed
    charges' price segments and live items (``History``), ``rates`` the
    account's tax rates in the order of its tax codes (``document_taxes``).

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
            plan = usage.plans.get(charge.id) or _plan_or_fail(
                charge,
                bill_cycle_day=account.bill_cycle_day,
                target_date=target_date,
                history=history,
            )
            if not plan.pieces and not plan.adjustments:
                continue
            try:
                result.items.extend(_charge_items(charge, subscription.id, plan, usage))
            except (ArithmeticError, ValueError) as exc:
                raise AccountComputationError(
                    f"Could not compute the amounts of charge {charge.name}: {exc}"
                ) from exc
            result.charged_through[charge.id] = plan.charged_through
    if result.items:
        result.taxes = document_taxes(result.items, charges_by_subscription, rates)
    total = result.total
    if abs(total) >= DOCUMENT_AMOUNT_LIMIT:
        # Refused here, for this account alone: the database would refuse the
        # whole chunk's write ("numeric field overflow").
        result.failures.append(AccountFailure(None, document_too_large_reason(total)))
        result.items.clear()
        result.taxes = []
    return result


def document_taxes(items, charges_by_subscription, rates):
    """The tax lines of one document of ``items`` at the account's ``rates``
    (``invoices.taxes.Rate``, in the order of its tax codes): the taxable
    base is the items of taxable charges, an adjustment following its
    charge (BILLING_RULES.md, Taxes)."""
    if not rates:
        return []
    taxable = {
        charge.id: charge.taxable
        for subscription_id in {item.subscription_id for item in items}
        for charge in charges_by_subscription.get(subscription_id, ())
    }
    _, lines, _ = taxes.tax_lines(((item.amount, taxable[item.charge_id]) for item in items), rates)
    return lines


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
