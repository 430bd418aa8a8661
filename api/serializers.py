"""The request bodies (checked for their shape and types: a wrong type or an
unknown field is 400; the rules are the services') and the objects the API
answers with."""

from rest_framework import serializers

from api.fields import (
    BillCycleDayField,
    DateStringField,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
)
from billruns.services import CHARGE_TYPE_VALUES
from core.money import plain_decimal
from invoices.models import PaymentMethod

MAX_USAGE_RECORDS = 1000


class BillRunCreateSerializer(StrictSerializer):
    """As ``billrun create``'s options; every field optional."""

    target_date = DateStringField(required=False, help_text="default: today")
    invoice_date = DateStringField(required=False, help_text="default: the target date")
    batches = serializers.ListField(
        child=StrictIntegerField(min_value=1, max_value=50), required=False, max_length=50
    )
    bill_cycle_day = BillCycleDayField(required=False, help_text='1-31 or "all" (the default)')
    account = StrictCharField(required=False, max_length=64)
    subscriptions = serializers.ListField(
        child=StrictCharField(max_length=64), required=False, max_length=1000
    )
    auto_post = StrictBooleanField(required=False, default=False)
    auto_email = StrictBooleanField(required=False, default=False)
    no_email_for_zero_amount = StrictBooleanField(required=False, default=False)
    exclude_charge_types = serializers.ListField(
        child=serializers.ChoiceField(choices=CHARGE_TYPE_VALUES), required=False, max_length=3
    )
    preview = StrictBooleanField(
        required=False,
        default=False,
        help_text="a preview (INTERFACES.md, Previews): not with auto_post, auto_email "
        "or no_email_for_zero_amount",
    )


class EmailSerializer(StrictSerializer):
    resend = StrictBooleanField(required=False, default=False)


class EmptySerializer(StrictSerializer):
    """A body with no field (a run's post, cancel, retry): ``{}`` or none."""


class PaymentSerializer(StrictSerializer):
    amount = StrictCharField(help_text="a decimal string, > 0, at most 2 places")
    date = DateStringField(help_text="YYYY-MM-DD, not after today")
    reference = StrictCharField(required=False, allow_blank=True, max_length=255, default="")
    method = serializers.ChoiceField(
        choices=PaymentMethod.values, required=False, default=PaymentMethod.BANK_TRANSFER
    )


class UsageRecordSerializer(StrictSerializer):
    id = StrictCharField(max_length=255)
    charge = StrictCharField(max_length=64)
    date = DateStringField()
    quantity = StrictCharField(max_length=40, help_text="a decimal string, 0 or more")


class UsageSerializer(StrictSerializer):
    records = UsageRecordSerializer(many=True, allow_empty=False, max_length=MAX_USAGE_RECORDS)


class AccountChangeSerializer(StrictSerializer):
    name = StrictCharField(required=False, max_length=255)
    bill_to_email = StrictCharField(required=False, allow_blank=True, max_length=1000)
    batch = StrictIntegerField(required=False, min_value=1, max_value=50)
    payment_term_days = StrictIntegerField(required=False, min_value=0, max_value=365)
    status = serializers.ChoiceField(choices=["Active", "Canceled"], required=False)
    tax_codes = serializers.ListField(
        child=StrictCharField(),
        required=False,
        help_text="the account's tax codes, in order (replaces them; [] for none)",
    )


class WebhookEndpointSerializer(StrictSerializer):
    url = StrictCharField(max_length=2000)
    events = serializers.ListField(child=StrictCharField(max_length=64), allow_empty=False)


# --- what the API answers -----------------------------------------------------------


def _date(value):
    return value.isoformat() if value else None


def _plain(value):
    return None if value is None else plain_decimal(value)


def pricing_dict(pricing):
    if pricing is None:
        return None
    tiers = sorted(pricing.tiers.all(), key=lambda tier: tier.from_quantity)
    if pricing.model == "per_unit":
        return {"model": pricing.model, "unit_price": _plain(tiers[0].unit_price)}
    return {
        "model": pricing.model,
        "tiers": [
            {
                "up_to": _plain(tier.up_to),
                "unit_price": _plain(tier.unit_price),
                "flat_fee": f"{tier.flat_fee:.2f}",
            }
            for tier in tiers
        ],
    }


def charge_dict(charge):
    return {
        "number": charge.number,
        "name": charge.name,
        "type": charge.charge_type,
        "amount": None if charge.amount is None else f"{charge.amount:.2f}",
        "quantity": _plain(charge.quantity),
        "unit": charge.unit,
        "pricing": pricing_dict(charge.pricing),
        "currency": charge.currency,
        "period": charge.period or None,
        "start_date": _date(charge.start_date),
        "end_date": _date(charge.end_date),
        "charged_through": _date(charge.charged_through_date),
    }


def subscription_dict(subscription, *, account=True):
    found = {
        "number": subscription.number,
        "status": subscription.status,
        "start_date": _date(subscription.start_date),
        "cancel_date": _date(subscription.cancel_date),
        "charges": [charge_dict(charge) for charge in subscription.charges.all()],
    }
    if account:
        found = {"account": subscription.account.number, **found}
    return found


def account_dict(account, *, subscriptions=True):
    found = {
        "number": account.number,
        "name": account.name,
        "bill_to_email": account.bill_to_email,
        "currency": account.currency,
        "bill_cycle_day": account.bill_cycle_day,
        "batch": account.batch,
        "payment_term_days": account.payment_term_days,
        "status": account.status,
        # In their order (the order of its documents' tax lines).
        "tax_codes": [tax_code.tax_rate.code for tax_code in account.tax_codes.all()],
    }
    if subscriptions:
        found["subscriptions"] = [
            subscription_dict(subscription, account=False)
            for subscription in account.subscriptions.all()
        ]
    return found


def change_dict(change):
    return {
        "id": change.pk,
        "type": change.change_type,
        "subscription": change.subscription.number,
        "charge": change.charge.number if change.charge_id else None,
        "effective_date": _date(change.effective_date),
        "before": change.before,
        "after": change.after,
        "made_by": change.made_by.get_username() if change.made_by_id else None,
        "made_at": change.made_at.isoformat(),
    }


def payment_dict(payment, document):
    return {
        "id": payment.pk,
        "document": document.number,
        "amount": f"{payment.amount:.2f}",
        "date": _date(payment.payment_date),
        "method": payment.method,
        "reference": payment.reference,
        "currency": document.currency,
        "balance": f"{document.balance:.2f}",
        "created_by": payment.created_by.get_username() if payment.created_by_id else None,
    }


def failure_dict(failure):
    return {
        "account": failure.account.number,
        "subscription": failure.subscription.number if failure.subscription_id else None,
        "reason": failure.reason,
    }
