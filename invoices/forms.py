import uuid

from django import forms
from django.utils import timezone

from core.dates import PaymentDateField
from core.forms import DATE_INPUT
from invoices.models import PaymentMethod


class PaymentForm(forms.Form):
    """Input for ``payment_record``; the service checks the amount against the
    open balance under a lock, so this form only checks the shape."""

    amount = forms.DecimalField(
        max_digits=18,
        decimal_places=2,
        min_value=0.01,
        widget=forms.NumberInput(attrs={"step": "0.01", "inputmode": "decimal"}),
    )
    # Between 2000-01-01 and today (INTERFACES.md, "Numbers and dates").
    payment_date = PaymentDateField(widget=DATE_INPUT)
    method = forms.ChoiceField(choices=PaymentMethod.choices, initial=PaymentMethod.BANK_TRANSFER)
    reference = forms.CharField(max_length=255, required=False)
    # Made when the form is drawn: submitting it twice records one payment.
    request_key = forms.UUIDField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, balance=None, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("request_key", uuid.uuid4())
            self.initial.setdefault("payment_date", timezone.localdate())
            if balance is not None:
                self.initial.setdefault("amount", balance)
