"""``{{ charge|charge_price }}``: what a charge costs, as its rows show it:
the unit price of a recurring or one-time charge, a usage charge's pricing
with its tiers (customers.pricing.describe)."""

from django import template

from core.money import format_money
from customers.changes.summary import change_summary
from customers.pricing import plain, pricing_description

register = template.Library()


@register.filter(name="charge_price")
def charge_price(charge):
    if charge.pricing_id is not None:
        return pricing_description(charge.pricing)
    return format_money(charge.amount)


@register.filter(name="terms")
def terms(row):
    """A charge's or a price segment's terms: ``3 × 10.00``, ``10.00`` for a
    quantity of 1, or a usage charge's pricing."""
    if row.pricing_id is not None:
        return pricing_description(row.pricing)
    if row.quantity is None or row.quantity == 1:
        return format_money(row.amount)
    return f"{plain(row.quantity)} × {format_money(row.amount)}"


@register.filter(name="change_summary")
def summary(change):
    return change_summary(change)
