"""``{{ amount|money:currency }}``: an amount as people read it;
``{{ quantity|plain }}``: a quantity or unit price (core.money)."""

from django import template

from core.money import format_money, format_plain, format_signed_money

register = template.Library()


@register.filter(name="money")
def money_filter(amount, currency=""):
    return format_money(amount, currency or "")


@register.filter(name="plain")
def plain_filter(value):
    return format_plain(value)


@register.filter(name="signed_money")
def signed_money_filter(amount):
    return format_signed_money(amount)
