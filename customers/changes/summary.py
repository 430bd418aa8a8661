"""A recorded change in one line, as the subscription page lists it: what
changed, from when, the values before and after (read from the change's
``before`` and ``after``, which keep them as the services wrote them)."""

from decimal import Decimal

from core.money import format_money
from customers.models import ChangeType, SubscriptionChange
from customers.pricing import Tier, describe, plain


def _pricing(value: dict) -> str:
    tiers = value.get("tiers")
    if tiers is None:
        tiers = [{"up_to": None, "unit_price": value["unit_price"], "flat_fee": "0"}]
    return describe(
        model=value["model"],
        tiers=[
            Tier(
                None if tier.get("up_to") is None else Decimal(tier["up_to"]),
                Decimal(tier["unit_price"]),
                Decimal(tier.get("flat_fee") or "0"),
            )
            for tier in tiers
        ],
    )


def terms_text(terms: dict) -> str:
    """``3 × 10.00`` (quantity × amount; ``10.00`` for a quantity of 1), or a
    usage charge's pricing (``Per unit: 0.002``)."""
    if terms.get("pricing"):
        return _pricing(terms["pricing"])
    amount = format_money(Decimal(terms["amount"]))
    quantity = Decimal(terms.get("quantity") or "1")
    return amount if quantity == 1 else f"{plain(quantity)} × {amount}"


def change_summary(change: SubscriptionChange) -> str:
    before, after = change.before or {}, change.after or {}
    day = change.effective_date.isoformat()
    charge = change.charge.number if change.charge_id else ""
    if change.change_type == ChangeType.ADD_CHARGE:
        if not after:
            return f"Added charge {charge} from {day}"
        return f"Added {after['name']} ({after['number']}) at {terms_text(after)}, from {day}"
    if change.change_type == ChangeType.CHANGE_PRICE:
        if not after:
            return f"{charge}: new terms from {day}"
        return f"{charge}: {terms_text(before)} → {terms_text(after)} from {day}"
    if change.change_type == ChangeType.REMOVE_CHARGE:
        was = before.get("end_date")
        end = after.get("end_date") or day
        return f"{charge}: removed, ends {end}" + (f" (was {was})" if was else "")
    removed = sorted((after.get("end_dates") or {}).items())
    ends = ", ".join(f"{number} ends {end}" for number, end in removed)
    return f"Subscription canceled from {day}" + (f": {ends}" if ends else "")
