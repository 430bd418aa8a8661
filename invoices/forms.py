import uuid
from decimal import Decimal

from django import forms
from django.utils import timezone

from core.dates import PaymentDateField
from core.forms import DATE_INPUT
from invoices.models import Document, DocumentStatus, Invoice, PaymentMethod
from invoices.services import DocumentActionRefused, credit_memo_apply


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


class CreditMemoApplyForm(forms.Form):
    """Input for ``credit_memo_apply``. The list offers the account's open
    Posted invoices in the credit memo's currency (the admin's action and the
    credit memo's page), but the number is taken as
    typed: the service checks status, account, currency and balances under its
    locks, so an invoice paid or canceled meanwhile gets its clear refusal."""

    invoice = forms.CharField(label="Invoice", max_length=32, widget=forms.Select)
    amount = forms.DecimalField(max_digits=18, decimal_places=2, min_value=Decimal("0.01"))
    # Made when the form is drawn: submitting it twice applies the credit once.
    request_key = forms.UUIDField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, credit_memo, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.credit_memo = credit_memo
        open_invoices = Invoice.objects.filter(
            account_id=credit_memo.account_id,
            currency=credit_memo.currency,
            status=DocumentStatus.POSTED,
            balance__gt=0,
        ).order_by("invoice_date", "pk")
        self.fields["invoice"].widget.choices = [("", "---------")] + [
            (
                invoice.number,
                f"{invoice.number} of {invoice.invoice_date}: "
                f"{invoice.balance} {invoice.currency} open",
            )
            for invoice in open_invoices
        ]
        if not self.is_bound:
            self.initial.setdefault("amount", credit_memo.balance)
            self.initial.setdefault("request_key", uuid.uuid4())

    def clean_invoice(self):
        number = self.cleaned_data["invoice"].strip()
        invoice_id = Document.objects.filter(number=number).values_list("pk", flat=True).first()
        if invoice_id is None:
            raise forms.ValidationError(f"There is no invoice {number}.")
        return invoice_id

    def apply(self, user) -> str | None:
        """Apply the valid form's credit (the page's and the admin's action)
        and say what was applied; a refusal (DocumentActionRefused) becomes a
        form error and None is returned."""
        try:
            application = credit_memo_apply(
                credit_memo_id=self.credit_memo.pk,
                invoice_id=self.cleaned_data["invoice"],
                amount=self.cleaned_data["amount"],
                user=user,
                request_key=self.cleaned_data["request_key"],
            )
        except DocumentActionRefused as refusal:
            self.add_error(None, str(refusal))
            return None
        return (
            f"{application.amount} {self.credit_memo.currency} of {self.credit_memo.number} "
            f"applied to {application.invoice.number}."
        )
