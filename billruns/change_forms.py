"""The forms of a subscription's changes (billruns/change_views.py).

Each form only gathers what the clerk typed and writes it as one change of
an ``amend`` file (INTERFACES.md, Subscription changes): the command's own
parser (``customers.changes.change_requests``) and rules judge it, so the
page and ``amend`` accept and refuse the same changes with the same
messages. ``field_for`` puts a message back on the field it is about."""

from django import forms
from django.utils import timezone

from core.forms import DATE_INPUT
from customers.models import BillingPeriod, ChargeType, PricingModel

TIERS_HELP = (
    "Graduated or volume: one tier a line, 'up to, unit price, flat fee' "
    "(the flat fee optional); the last line's 'up to' empty: 1000, 0 / 10000, 0.002, 5.00 / , 0.001"
)


class TiersRefused(ValueError):
    pass


def _tiers(text: str) -> list[dict]:
    """The tiers typed one a line as the import's JSON takes them (strings,
    checked by the import's pricing rules)."""
    tiers = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        cells = [cell.strip() for cell in line.split(",")]
        if len(cells) not in (2, 3):
            raise TiersRefused(
                f"line {number}: give 'up to, unit price' or 'up to, unit price, flat fee'"
            )
        tier = {"up_to": cells[0] or None, "unit_price": cells[1]}
        if len(cells) == 3 and cells[2]:
            tier["flat_fee"] = cells[2]
        tiers.append(tier)
    return tiers


class ChangeForm(forms.Form):
    """What every change form shares: ``change()`` gives the change as an
    ``amend`` file's object; ``FIELD_PATHS`` maps the last part of a
    problem's path to the field that shows it."""

    FIELD_PATHS: dict = {}

    def __init__(self, *args, subscription, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.subscription = subscription

    def field_for(self, path: str) -> str | None:
        """The form's field a problem's JSON path is about (``changes[0].charge.amount``)."""
        parts = [part.split("[")[0] for part in path.split(".")[1:]]
        for part in reversed(parts):
            name = self.FIELD_PATHS.get(part, part)
            if name in self.fields:
                return name
        return None


def _pricing(data: dict) -> dict | None:
    model = data.get("pricing_model")
    if not model:
        return None
    if model == PricingModel.PER_UNIT:
        return {"model": model, "unit_price": data.get("unit_price") or ""}
    return {"model": model, "tiers": data.get("parsed_tiers") or []}


class PricingFields(forms.Form):
    pricing_model = forms.ChoiceField(
        label="Pricing", choices=[("", "—"), *PricingModel.choices], required=False
    )
    unit_price = forms.CharField(
        label="Unit price", required=False, help_text="Per unit: the price of one unit."
    )
    tiers = forms.CharField(
        label="Tiers",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=TIERS_HELP,
    )

    def clean(self):
        data = super().clean()
        try:
            data["parsed_tiers"] = _tiers(data.get("tiers") or "")
        except TiersRefused as refused:
            self.add_error("tiers", str(refused))
        return data


class AddChargeForm(ChangeForm, PricingFields):
    name = forms.CharField(max_length=255)
    charge_type = forms.ChoiceField(label="Type", choices=ChargeType.choices)
    start_date = forms.CharField(label="Start date", widget=DATE_INPUT)
    end_date = forms.CharField(
        label="End date", widget=DATE_INPUT, required=False, help_text="Optional, exclusive."
    )
    amount = forms.CharField(
        required=False, help_text="Recurring and one-time: the unit price (negative: a credit)."
    )
    quantity = forms.CharField(required=False, help_text="Recurring and one-time; default 1.")
    period = forms.ChoiceField(
        label="Billing period", choices=[("", "—"), *BillingPeriod.choices], required=False
    )
    unit = forms.CharField(
        label="Unit of measure", max_length=50, required=False, help_text="Usage only."
    )
    number = forms.CharField(
        label="Charge number", required=False, help_text="Optional: generated when empty."
    )
    # Checked when the form opens: a charge is taxable unless marked otherwise
    # (BILLING_RULES.md, Customers); unchecked, it is never taxed.
    taxable = forms.BooleanField(
        required=False, initial=True, help_text="Taxed at the account's tax rates."
    )

    field_order = [
        "name",
        "charge_type",
        "start_date",
        "end_date",
        "period",
        "amount",
        "quantity",
        "unit",
        "pricing_model",
        "unit_price",
        "tiers",
        "taxable",
        "number",
    ]
    FIELD_PATHS = {"type": "charge_type", "pricing": "pricing_model"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("start_date", timezone.localdate().isoformat())

    def change(self) -> dict:
        data = self.cleaned_data
        charge = {
            "name": data["name"],
            "type": data["charge_type"],
            "start_date": data["start_date"],
            "taxable": data["taxable"],
        }
        for key in ("end_date", "amount", "quantity", "period", "unit", "number"):
            if data.get(key):
                charge[key] = data[key]
        pricing = _pricing(data)
        if pricing is not None:
            charge["pricing"] = pricing
        return {"type": "add_charge", "subscription": self.subscription.number, "charge": charge}


def charge_choices(subscription, *, types):
    return [
        (charge.number, f"{charge.number} {charge.name}")
        for charge in subscription.charges.filter(charge_type__in=types).order_by("id")
    ]


class ChargeChangeForm(ChangeForm):
    """A change of one charge of the subscription, from a day on."""

    TYPES = (ChargeType.RECURRING, ChargeType.USAGE, ChargeType.ONE_TIME)

    charge = forms.ChoiceField()
    effective_date = forms.CharField(label="Effective date", widget=DATE_INPUT)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["charge"].choices = charge_choices(self.subscription, types=self.TYPES)
        if not self.is_bound:
            self.initial.setdefault("effective_date", timezone.localdate().isoformat())

    def selected_charge(self):
        """The charge chosen (bound) or proposed (``initial``), if one of the
        subscription's."""
        number = self.data.get("charge") if self.is_bound else self.initial.get("charge")
        return self.subscription.charges.filter(number=number).first() if number else None


class ChangePriceForm(ChargeChangeForm, PricingFields):
    TYPES = (ChargeType.RECURRING, ChargeType.USAGE)

    amount = forms.CharField(
        label="New amount", required=False, help_text="Recurring: the new unit price."
    )
    quantity = forms.CharField(
        label="New quantity", required=False, help_text="Recurring: seats, licences…"
    )
    field_order = [
        "charge",
        "effective_date",
        "amount",
        "quantity",
        "pricing_model",
        "unit_price",
        "tiers",
    ]
    FIELD_PATHS = {"pricing": "pricing_model"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["pricing_model"].label = "New pricing"
        selected = self.selected_charge()
        # The terms of the charge's type only (the rules refuse the others).
        if selected is not None and selected.charge_type == ChargeType.USAGE:
            del self.fields["amount"], self.fields["quantity"]
        elif selected is not None:
            for name in ("pricing_model", "unit_price", "tiers"):
                del self.fields[name]

    def change(self) -> dict:
        data = self.cleaned_data
        change = {
            "type": "change_price",
            "charge": data["charge"],
            "effective_date": data["effective_date"],
        }
        for key in ("amount", "quantity"):
            if data.get(key):
                change[key] = data[key]
        pricing = _pricing(data)
        if pricing is not None:
            change["pricing"] = pricing
        return change


class RemoveChargeForm(ChargeChangeForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields[
            "effective_date"
        ].help_text = (
            "The charge's new end date (exclusive). A one-time charge is removed whatever the date."
        )

    def change(self) -> dict:
        data = self.cleaned_data
        return {
            "type": "remove_charge",
            "charge": data["charge"],
            "effective_date": data["effective_date"],
        }


class CancelSubscriptionForm(ChangeForm):
    effective_date = forms.CharField(
        label="Cancel date",
        widget=DATE_INPUT,
        help_text="Every recurring and usage charge ends here; unbilled one-time charges "
        "starting on or after it are removed.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("effective_date", timezone.localdate().isoformat())

    def change(self) -> dict:
        return {
            "type": "cancel_subscription",
            "subscription": self.subscription.number,
            "effective_date": self.cleaned_data["effective_date"],
        }
