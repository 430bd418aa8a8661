from django import forms

from customers.services import EMAIL_MAX_LENGTH


class BillToContactForm(forms.Form):
    """Input for ``account_bill_to_contact_change``, which checks the address:
    this form only takes it in (the page says the service's reason)."""

    bill_to_email = forms.CharField(
        label="Bill-to contact",
        # Longer input reaches the service, which says why it is refused.
        max_length=EMAIL_MAX_LENGTH * 4,
        required=False,
        strip=False,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "placeholder": "ap@example.com"}),
        help_text="The email address the account's invoices and credit memos are sent to.",
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
