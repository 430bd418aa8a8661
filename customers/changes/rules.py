"""What each change is allowed on (BILLING_RULES.md, the table of
"Subscription changes and adjustments", column "allowed when"), read from
the database as the earlier changes of the same list left it.

Each check returns a Refusal, or None: the field of the change it is about
and a message naming the charge or subscription and the rule
(``C00000003: a change effective 2026-03-01 is before the change of
2026-04-01``). The callers (``services.py``) hold the accounts' locks.
"""

import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Max

from customers.models import (
    Charge,
    ChargePrice,
    ChargeType,
    Status,
    Subscription,
    SubscriptionChange,
    UsageRecord,
)
from customers.pricing import Tier
from customers.selectors import pricings

# The types whose price can change and whose service ends at a date.
BILLED_BY_PERIOD = (ChargeType.RECURRING, ChargeType.USAGE)


@dataclass(frozen=True)
class Refusal:
    field: str  # the change's field it is about; "" for the change itself
    message: str


@dataclass(frozen=True)
class Terms:
    """What a charge costs from a day on: a recurring or one-time charge its
    amount and quantity, a usage charge its pricing (model and tiers, which
    are what two pricings are compared by: a pricing is a value)."""

    amount: Decimal | None
    quantity: Decimal | None
    pricing_id: int | None = None
    pricing_model: str | None = None
    pricing_tiers: tuple[Tier, ...] = ()

    def same_as(self, other: "Terms") -> bool:
        return (
            self.amount == other.amount
            and self.quantity == other.quantity
            and self.pricing_model == other.pricing_model
            and self.pricing_tiers == other.pricing_tiers
        )


def status_refusal(subscription: Subscription, *, who: str, field: str) -> Refusal | None:
    """A change to a subscription of a Canceled account, or to a Canceled
    subscription, is refused. ``who`` starts the message: the subscription's
    number, or the charge's for a change of one charge."""
    account = subscription.account
    if account.status != Status.ACTIVE:
        return Refusal(field, f"{who}: the account {account.number} is {account.status}")
    if subscription.status != Status.ACTIVE:
        if who == subscription.number:
            return Refusal(field, f"{who}: the subscription is {subscription.status}")
        return Refusal(
            field, f"{who}: its subscription {subscription.number} is {subscription.status}"
        )
    return None


def terms_in_effect(charge: Charge, day: datetime.date) -> Terms:
    """The charge's terms on ``day``: those of its latest price segment from
    ``day`` or before, else its own columns (a charge's terms before its
    first segment)."""
    segment = (
        ChargePrice.objects.filter(charge=charge, effective_date__lte=day)
        .order_by("-effective_date")
        .first()
    )
    source = segment if segment is not None else charge
    pricing_id = source.pricing_id
    if pricing_id is None:
        return Terms(amount=source.amount, quantity=source.quantity)
    model, tiers = pricings([pricing_id])[pricing_id]
    return Terms(
        amount=None,
        quantity=None,
        pricing_id=pricing_id,
        pricing_model=model,
        pricing_tiers=tuple(tiers),
    )


def latest_change_date(charge: Charge) -> datetime.date | None:
    """The latest effective date among the changes recorded on the charge
    (its addition's is its start date)."""
    return SubscriptionChange.objects.filter(charge=charge).aggregate(latest=Max("effective_date"))[
        "latest"
    ]


def _after_earlier_changes(charge: Charge, day: datetime.date) -> Refusal | None:
    latest = latest_change_date(charge)
    if latest is not None and day < latest:
        return Refusal(
            "effective_date",
            f"{charge.number}: a change effective {day.isoformat()} is before the change of "
            f"{latest.isoformat()}",
        )
    return None


def _before_end(charge: Charge, day: datetime.date, what: str) -> Refusal | None:
    if charge.end_date is not None and day >= charge.end_date:
        return Refusal(
            "effective_date",
            f"{charge.number}: {what} effective {day.isoformat()} is not before the charge's "
            f"end {charge.end_date.isoformat()}",
        )
    return None


def price_change_refusal(charge: Charge, day: datetime.date) -> Refusal | None:
    """Recurring or usage; ``day`` after the charge's start, on or after
    every earlier change's effective date on it, before its end (if any).
    One price change per charge and day (the segments' unique key): two
    changes of one day are one change with both terms."""
    if charge.charge_type not in BILLED_BY_PERIOD:
        return Refusal(
            "charge",
            f"{charge.number}: only a recurring or usage charge's price can change, "
            f"not a {charge.get_charge_type_display().lower()} charge's",
        )
    if day <= charge.start_date:
        return Refusal(
            "effective_date",
            f"{charge.number}: a price change effective {day.isoformat()} is not after the "
            f"charge's start {charge.start_date.isoformat()}",
        )
    refusal = _after_earlier_changes(charge, day) or _before_end(charge, day, "a price change")
    if refusal:
        return refusal
    if ChargePrice.objects.filter(charge=charge, effective_date=day).exists():
        return Refusal(
            "effective_date",
            f"{charge.number}: its price already changes on {day.isoformat()}; give the "
            "new amount and quantity in one change",
        )
    return None


def new_terms_refusal(charge: Charge, day: datetime.date, old: Terms, new: Terms) -> Refusal:
    """The new terms differ from those in effect on ``day``."""
    if new.same_as(old):
        return Refusal("", f"{charge.number}: the new terms are those in effect on {day}")
    return None


def removal_refusal(charge: Charge, day: datetime.date) -> Refusal | None:
    """Whether ``charge`` accepts being removed at ``day`` (a one-time
    charge: whatever ``day``)."""
    if charge.charge_type == ChargeType.ONE_TIME:
        if charge.charged_through_date is not None:
            return Refusal(
                "charge", f"{charge.number}: a one-time charge can be removed only while unbilled"
            )
        if charge.end_date is not None:
            return Refusal("charge", f"{charge.number}: the one-time charge is already removed")
        return None
    if day < charge.start_date:
        return Refusal(
            "effective_date",
            f"{charge.number}: a removal effective {day.isoformat()} is before the charge's "
            f"start {charge.start_date.isoformat()}",
        )
    refusal = _after_earlier_changes(charge, day) or _before_end(charge, day, "a removal")
    if refusal:
        return refusal
    if charge.charge_type == ChargeType.USAGE:
        last = UsageRecord.objects.filter(charge=charge, date__gte=day).aggregate(last=Max("date"))[
            "last"
        ]
        if last is not None:
            return Refusal(
                "effective_date",
                f"{charge.number}: usage recorded on {last.isoformat()}, on or after the "
                f"removal date {day.isoformat()}",
            )
    return None


def cancel_removals(subscription: Subscription, day: datetime.date):
    """What canceling ``subscription`` at ``day`` removes, as (charge, its
    new end date) in id order, or the first Refusal of one of them.

    Every recurring and usage charge whose end is absent or after its
    removal date is removed: at ``day``, or at its start when it starts
    after ``day`` (it never bills); one already ending by then is left as it
    is (a charge already removed at its start needs no second removal). The
    unbilled one-time charges starting on or after ``day`` are removed (end
    = start); a billed one-time charge stays as billed, and an unbilled one
    starting before ``day`` is still owed."""
    removals = []
    for charge in Charge.objects.filter(subscription=subscription).order_by("pk"):
        if charge.charge_type == ChargeType.ONE_TIME:
            if (
                charge.charged_through_date is None
                and charge.end_date is None
                and charge.start_date >= day
            ):
                removals.append((charge, charge.start_date))
            continue
        end = max(day, charge.start_date)
        if charge.end_date is not None and charge.end_date <= end:
            continue
        refusal = removal_refusal(charge, end)
        if refusal:
            return Refusal(refusal.field, f"{subscription.number}: {refusal.message}")
        removals.append((charge, end))
    return removals
