"""Writes on accounts from the pages (the import is customers/importer/)."""

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from customers.models import Account

# The column's length (EmailField's default), checked before the database would.
EMAIL_MAX_LENGTH = Account._meta.get_field("bill_to_email").max_length


class BillToContactRefused(Exception):
    """The bill-to contact given is not a usable email address; nothing changed."""


def account_bill_to_contact_change(*, account_id: int, email: str) -> Account:
    """Sets the account's bill-to contact (its bill-to email) to ``email``,
    surrounding spaces dropped, and returns the account.

    Refuses (BillToContactRefused, nothing written) an empty address, one
    longer than the column, or one that is not an email address. One UPDATE
    of that one column: nothing else of the account changes and nothing else
    is recorded. A run that is billing the account reads the contact when it
    makes the account's document; the next run (or a retry) bills it.
    """
    email = (email or "").strip()
    if not email:
        raise BillToContactRefused("Enter the bill-to contact's email address.")
    if len(email) > EMAIL_MAX_LENGTH:
        raise BillToContactRefused(
            f"The email address is too long: at most {EMAIL_MAX_LENGTH} characters."
        )
    try:
        validate_email(email)
    except ValidationError as invalid:
        raise BillToContactRefused(
            f"“{email}” is not a valid email address, such as ap@example.com."
        ) from invalid
    Account.objects.filter(pk=account_id).update(bill_to_email=email)
    return Account.objects.get(pk=account_id)
