"""``{{ charge|charge_price }}``: what a charge costs, as its rows show it:
the unit price of a recurring or one-time charge, a usage charge's pricing
with its tiers (customers.pricing.describe)."""

from django import template

from core.money import format_money
from customers.pricing import pricing_description

register = template.Library()


@register.filter(name="charge_price")
def charge_price(charge):
    if charge.pricing_id is not None:
        return pricing_description(charge.pricing)
    return format_money(charge.amount)
