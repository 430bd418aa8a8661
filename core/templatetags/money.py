"""``{{ amount|money:currency }}``: an amount as people read it (core.money)."""

from django import template

from core.money import format_money

register = template.Library()


@register.filter(name="money")
def money_filter(amount, currency=""):
    return format_money(amount, currency or "")
