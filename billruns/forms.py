import re
import uuid

from django import forms
from django.utils import timezone

from core.dates import DateInRangeField
from core.forms import DATE_INPUT
from customers.models import Account, ChargeType

BATCH_CHOICES = [(n, f"Batch{n}") for n in range(1, 51)]
BILL_CYCLE_DAY_CHOICES = [("all", "All bill cycle days")] + [(str(d), str(d)) for d in range(1, 32)]
# In the order a clerk reads them; the run stores its values sorted.
EXCLUDE_CHARGE_TYPE_CHOICES = [
    (ChargeType.ONE_TIME, ChargeType.ONE_TIME.label),
    (ChargeType.RECURRING, ChargeType.RECURRING.label),
    (ChargeType.USAGE, ChargeType.USAGE.label),
]
EXCLUDE_CHARGE_TYPES_HELP = (
    "None ticked: every charge type is billed. "
    "The excluded charges stay due and bill in a later run."
)


def exclude_charge_types_field():
    """The "Charge types to exclude" checkboxes of a new run and of a schedule."""
    return forms.MultipleChoiceField(
        label="Charge types to exclude",
        choices=EXCLUDE_CHARGE_TYPE_CHOICES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=EXCLUDE_CHARGE_TYPES_HELP,
    )


STALE_FORM = "This form has expired or was changed; please submit it again."


class SelectionMode:
    BATCHES = "batches"
    ACCOUNT = "account"
    CHOICES = [
        (BATCHES, "Batches and bill cycle day"),
        (ACCOUNT, "One account"),
    ]


class BillRunForm(forms.Form):
    """A new ad hoc bill run. The service validates the rules again; this form
    turns what the clerk typed into the service's arguments."""

    target_date = DateInRangeField(
        widget=DATE_INPUT,
        help_text="Charges with a service period starting on or before this day are billed.",
    )
    invoice_date = DateInRangeField(
        required=False,
        widget=DATE_INPUT,
        help_text="Leave empty to use the target date; it may be before or after it.",
    )
    mode = forms.ChoiceField(
        label="Select accounts by",
        choices=SelectionMode.CHOICES,
        initial=SelectionMode.BATCHES,
        widget=forms.RadioSelect,
    )
    batches = forms.TypedMultipleChoiceField(
        choices=BATCH_CHOICES,
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: all batches.",
    )
    bill_cycle_day = forms.ChoiceField(
        label="Bill cycle day", choices=BILL_CYCLE_DAY_CHOICES, initial="all"
    )
    account = forms.CharField(
        label="Account number",
        required=False,
        max_length=64,
        widget=forms.TextInput(attrs={"placeholder": "A00000001", "autocomplete": "off"}),
    )
    subscriptions = forms.CharField(
        label="Subscription numbers",
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "S00000001, S00000002"}),
        help_text="Optional, separated by commas or spaces. "
        "Empty: all of the account's subscriptions.",
    )
    auto_post = forms.BooleanField(
        label="Post the invoices automatically when the run completes", required=False
    )
    auto_email = forms.BooleanField(
        label="Email the invoices to the bill-to contacts once posted", required=False
    )
    no_email_for_zero_amount = forms.BooleanField(
        label="Do not email invoices with a zero amount", required=False
    )
    exclude_charge_types = exclude_charge_types_field()
    # Idempotency key: a double submit of this form creates one run.
    request_key = forms.UUIDField(widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("target_date", timezone.localdate())
            self.initial.setdefault("request_key", uuid.uuid4())

    def clean_account(self):
        # Numbers are compared exactly, case included: mixcase1 and MIXCASE1
        # would be two customers (INTERFACES.md, "Numbers and dates").
        number = self.cleaned_data["account"]
        if self.data.get("mode") != SelectionMode.ACCOUNT:
            return None
        if not number:
            raise forms.ValidationError("Enter the account number.")
        account = Account.objects.filter(number=number).first()
        if account is None:
            raise forms.ValidationError(
                f"There is no account {number}. Numbers are matched exactly, case included."
            )
        return account

    def clean(self):
        cleaned = super().clean()
        if "request_key" in self.errors:
            # The hidden key was altered (or lost): its field error would not
            # show, as the field is hidden, so say it at the top, and render a
            # fresh key so that submitting the form again works.
            del self.errors["request_key"]
            self.add_error(None, STALE_FORM)
            self.data = self.data.copy()
            self.data[self.add_prefix("request_key")] = str(uuid.uuid4())
        account = cleaned.get("account")
        raw = cleaned.get("subscriptions") or ""
        numbers = [n for n in re.split(r"[\s,;]+", raw) if n]
        if cleaned.get("mode") != SelectionMode.ACCOUNT:
            cleaned["subscriptions"] = []
            return cleaned
        cleaned["batches"] = []
        cleaned["bill_cycle_day"] = "all"
        if account is None or not numbers:
            cleaned["subscriptions"] = []
            return cleaned
        found = {s.number: s for s in account.subscriptions.filter(number__in=numbers)}
        missing = [n for n in numbers if n not in found]
        if missing:
            self.add_error(
                "subscriptions",
                f"Not subscriptions of {account.number}: {', '.join(missing)}. "
                "Numbers are matched exactly, case included.",
            )
        cleaned["subscriptions"] = [found[n] for n in numbers if n in found]
        return cleaned

    def service_arguments(self):
        data = self.cleaned_data
        day = data["bill_cycle_day"]
        return {
            "target_date": data["target_date"],
            "invoice_date": data["invoice_date"],
            "batches": tuple(data["batches"]),
            "bill_cycle_days": () if day == "all" else (int(day),),
            "account": data["account"],
            "subscriptions": tuple(data["subscriptions"]),
            "auto_post": data["auto_post"],
            "auto_email": data["auto_email"],
            "no_email_for_zero_amount": data["no_email_for_zero_amount"],
            "exclude_charge_types": tuple(data["exclude_charge_types"]),
            "request_key": data["request_key"],
        }

    # The service names its fields like its arguments; two differ here.
    SERVICE_FIELDS = {"bill_cycle_days": "bill_cycle_day"}

    def add_service_errors(self, errors):
        for field, messages in errors.items():
            name = self.SERVICE_FIELDS.get(field, field)
            for message in messages:
                self.add_error(name if name in self.fields else None, message)
