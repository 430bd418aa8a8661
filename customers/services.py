"""Writes on accounts from the pages, and pricings (the import is customers/importer/)."""

from collections.abc import Sequence

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from customers.models import Account, Pricing, PricingTier
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
