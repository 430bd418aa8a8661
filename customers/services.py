"""Writes on accounts from the pages, and pricings (the import is customers/importer/)."""

from collections.abc import Sequence

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from core import locks
from customers.models import Account, Pricing, PricingTier, Status
from customers.pricing import Tier, pricing_problems, tier_bounds

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
    email = _checked_email(email)
    Account.objects.filter(pk=account_id).update(bill_to_email=email)
    return Account.objects.get(pk=account_id)


def _checked_email(email: str) -> str:
    """``email`` without surrounding spaces, or BillToContactRefused saying why not."""
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
    return email


class PricingRefused(Exception):
    """The tiers given cannot make a pricing; nothing was written.
    ``problems`` holds (where, message) pairs, as ``pricing_problems`` says."""

    def __init__(self, problems):
        self.problems = problems
        super().__init__("; ".join(f"{where}: {message}" for where, message in problems))


def pricing_create(*, model: str, tiers: Sequence[Tier]) -> Pricing:
    """Writes a pricing of ``model`` with ``tiers`` (upper bounds, in order)
    and returns it.

    The tiers are checked as a whole first (``pricing_problems``: ordered,
    the last unbounded, one for per unit; prices and fees exact and not
    negative) and refused with PricingRefused, nothing written. Then the
    pricing and all its tiers are written in one transaction, each tier with
    its lower bound (the previous one's upper), which the database's
    constraints check row by row. A pricing is never changed afterwards."""
    problems = pricing_problems(model=model, tiers=tiers)
    if problems:
        raise PricingRefused(problems)
    with transaction.atomic():
        pricing = Pricing.objects.create(model=model)
        pricing_tiers_write(pricing=pricing, tiers=tiers)
    return pricing


def pricing_tiers_write(*, pricing: Pricing, tiers: Sequence[Tier]) -> None:
    """Writes the tiers of a pricing that has none yet (the admin saves the
    pricing's row first), checked as a whole as ``pricing_create`` does.
    Refuses (PricingRefused) a pricing that has tiers: a pricing is a value,
    never changed once written."""
    problems = pricing_problems(model=pricing.model, tiers=tiers)
    if problems:
        raise PricingRefused(problems)
    if pricing.tiers.exists():
        raise PricingRefused([("tiers", f"{pricing} has its tiers; a pricing is never changed")])
    PricingTier.objects.bulk_create(
        PricingTier(
            pricing=pricing,
            from_quantity=lower,
            up_to=tier.up_to,
            unit_price=tier.unit_price,
            flat_fee=tier.flat_fee,
        )
        for tier, (lower, _) in zip(tiers, tier_bounds(tiers), strict=True)
    )


class AccountChangeRefused(Exception):
    """The account's new values are refused; nothing changed. ``errors`` maps
    each field to its messages."""

    def __init__(self, errors):
        self.errors = errors
        super().__init__(
            "; ".join(f"{field}: {message}" for field, ms in errors.items() for message in ms)
        )


ACCOUNT_NAME_MAX_LENGTH = Account._meta.get_field("name").max_length


def _whole(value, low, high, what):
    if isinstance(value, bool) or not isinstance(value, int):
        return None, f"{what} is a whole number from {low} to {high}, not {value!r}."
    if not low <= value <= high:
        return None, f"{what} must be from {low} to {high}, not {value}."
    return value, None


def account_change(*, account_id: int, changes: dict) -> Account:
    """Change an account's ``name``, ``bill_to_email`` (as
    ``account_bill_to_contact_change`` checks it), ``batch`` (1-50),
    ``payment_term_days`` (0-365) or ``status`` (Active or Canceled): the
    fields ``changes`` names, nothing else. Every value is checked first;
    any problem raises AccountChangeRefused and nothing is written.

    Transaction: one, under the account's lock (core.locks), as a run's chunk
    takes it before it reads the account: a run bills the account as it was
    before the change or after it. One UPDATE of the fields given."""
    errors, values = {}, {}
    for field, value in changes.items():
        problem = None
        if field == "name":
            text = value.strip() if isinstance(value, str) else None
            if not text:
                problem = "The name is text and not empty."
            elif len(text) > ACCOUNT_NAME_MAX_LENGTH:
                problem = f"The name is at most {ACCOUNT_NAME_MAX_LENGTH} characters."
            values[field] = text
        elif field == "bill_to_email":
            try:
                values[field] = _checked_email(value if isinstance(value, str) else "")
            except BillToContactRefused as refused:
                problem = str(refused)
        elif field == "batch":
            values[field], problem = _whole(value, 1, 50, "The batch")
        elif field == "payment_term_days":
            values[field], problem = _whole(value, 0, 365, "The payment term")
        elif field == "status":
            if value not in Status.values:
                problem = f"The status is one of {', '.join(Status.values)}, not {value!r}."
            values[field] = value
        else:
            problem = "This field cannot be changed."
        if problem:
            errors[field] = [problem]
    if errors:
        raise AccountChangeRefused(errors)
    with transaction.atomic():
        locks.lock_one(Account, account_id)
        if values:
            Account.objects.filter(pk=account_id).update(**values)
    return Account.objects.get(pk=account_id)
