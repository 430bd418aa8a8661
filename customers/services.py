"""Writes on accounts from the pages, pricings and tax rates (the import is
customers/importer/)."""

from collections.abc import Sequence
from decimal import Decimal

from django.contrib.admin.models import CHANGE, LogEntry
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import translation
from django.utils.text import capfirst

from core import locks
from core.users import acting_user
from customers.models import (
    Account,
    AccountTaxCode,
    Pricing,
    PricingTier,
    Status,
    TaxRate,
    TaxRateChange,
    tax_code_problem,
    tax_rate_parse,
    tax_rate_problem,
)
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


# --- tax rates (issue 15) ----------------------------------------------------------


class TaxRateRefused(Exception):
    """The code, rate or name given cannot make a tax rate; nothing changed."""


TAX_NAME_MAX_LENGTH = TaxRate._meta.get_field("name").max_length


def tax_name_problem(name) -> str | None:
    """Why ``name`` cannot be a tax rate's name, or None."""
    if not isinstance(name, str) or not name.strip():
        return "must not be empty"
    if len(name.strip()) > TAX_NAME_MAX_LENGTH:
        return f"must be at most {TAX_NAME_MAX_LENGTH} characters long"
    if "\x00" in name:
        return "must not contain NUL characters"
    return None


def _rate_value(rate) -> Decimal:
    if isinstance(rate, str):
        try:
            return tax_rate_parse(rate)
        except ValueError as exc:
            raise TaxRateRefused(f"rate: {exc}") from None
    if isinstance(rate, int) and not isinstance(rate, bool):
        rate = Decimal(rate)
    problem = tax_rate_problem(rate)
    if problem:
        raise TaxRateRefused(f"rate: {problem}")
    return rate


def tax_rate_set(code: str, rate, *, name: str | None = None, user=None) -> TaxRate:
    """Creates the tax rate ``code`` (its name ``name``, or its code when
    none is given) or changes its rate and, when given, its name; returns it.

    ``rate`` is a percent from 0 to 100 with at most 4 places, a Decimal or
    the text of one (``"7.25"``); anything else, a bad code or name is
    refused (TaxRateRefused) and nothing is written. Every creation and
    every change is recorded (``TaxRateChange``: who, when, the name and
    rate before and after); setting what a rate already is changes and
    records nothing. The rate's row is locked for the change (core.locks:
    a row locked alone), so two changes at once are recorded one after the
    other, each with the values the other left. A run uses the rates as it
    finds them when it starts generating (BILLING_RULES.md, Taxes)."""
    problem = tax_code_problem(code)
    if problem:
        raise TaxRateRefused(f"code: {problem}")
    rate = _rate_value(rate)
    if name is not None:
        problem = tax_name_problem(name)
        if problem:
            raise TaxRateRefused(f"name: {problem}")
        name = name.strip()
    user = acting_user(user)
    with transaction.atomic():
        current = locks.locked(TaxRate.objects.filter(code=code)).first()
        if current is None:
            try:
                with transaction.atomic():
                    created = TaxRate.objects.create(code=code, name=name or code, rate=rate)
                    TaxRateChange.objects.create(
                        tax_rate=created,
                        changed_by=user,
                        changed_at=created.updated_at,
                        new_name=created.name,
                        new_rate=rate,
                    )
                return created
            except IntegrityError:
                # Created meanwhile by another transaction: change it instead.
                current = locks.locked(TaxRate.objects.filter(code=code)).get()
        new_name = current.name if name is None else name
        if new_name == current.name and rate == current.rate:
            return current
        change = TaxRateChange(
            tax_rate=current,
            changed_by=user,
            old_name=current.name,
            new_name=new_name,
            old_rate=current.rate,
            new_rate=rate,
        )
        current.name = new_name
        current.rate = rate
        current.save(update_fields=["name", "rate", "updated_at"])
        change.changed_at = current.updated_at
        change.save()
    current.refresh_from_db()
    return current


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


def account_change(*, account_id: int, changes: dict, user=None) -> Account:
    """Change an account's ``name``, ``bill_to_email`` (as
    ``account_bill_to_contact_change`` checks it), ``batch`` (1-50),
    ``payment_term_days`` (0-365), ``status`` (Active or Canceled) or
    ``tax_codes`` (a list of distinct codes of existing tax rates, as the
    import takes them: the account's codes become these, in this order): the
    fields ``changes`` names, nothing else. Every value is checked first;
    any problem raises AccountChangeRefused (a tax code's at its path,
    ``tax_codes[1]``) and nothing is written.

    Transaction: one, under the account's lock (core.locks), as a run's chunk
    takes it before it reads the account and its tax codes: a run bills the
    account as it was before the change or after it. One UPDATE of the
    fields given; the tax codes rewritten as a whole (positions 1, 2, ...),
    only when they differ. A change is recorded in the account's admin
    history as done by ``user`` (the API's key), as the admin records its
    own (``_history_record``), in the same transaction; nothing when nothing
    differed or no user is given."""
    errors, values = {}, {}
    tax_codes = None
    for field, value in changes.items():
        problem = None
        if field == "tax_codes":
            tax_codes = _tax_codes_checked(value, errors)
        elif field == "name":
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
    try:
        with transaction.atomic():
            before = locks.lock_one(Account, account_id)
            rewritten = None
            if tax_codes is not None:
                rewritten = _tax_codes_write(account_id, tax_codes)
            if values:
                Account.objects.filter(pk=account_id).update(**values)
            changed = [field for field, value in values.items() if getattr(before, field) != value]
            if acting_user(user) is not None and (changed or rewritten):
                _history_record(user, before, changed, rewritten)
    except IntegrityError:
        # A tax rate deleted between the check and the write (its foreign key).
        raise AccountChangeRefused(
            {"tax_codes": ["A tax rate of these codes was just deleted; nothing changed."]}
        ) from None
    return Account.objects.get(pk=account_id)


def _tax_codes_checked(value, errors) -> list[str] | None:
    """``value`` as the account's new tax codes (a list of distinct valid
    codes), or None with its problems added to ``errors``, at their paths."""
    if not isinstance(value, list):
        errors["tax_codes"] = ['A list of tax codes such as ["VAT20"] (empty for none).']
        return None
    seen: dict[str, int] = {}
    for i, code in enumerate(value):
        problem = tax_code_problem(code) if isinstance(code, str) else "must be a string"
        if problem:
            errors[f"tax_codes[{i}]"] = [f"A tax code {problem}."]
        elif seen.setdefault(code, i) != i:
            errors[f"tax_codes[{i}]"] = [
                f"The tax code {code} appears more than once (first at tax_codes[{seen[code]}])."
            ]
    if any(key.startswith("tax_codes") for key in errors):
        return None
    return list(value)


def _tax_codes_write(account_id: int, codes: list[str]):
    """Replace the account's tax codes by ``codes``, in order, under its lock
    (the caller's); refused (AccountChangeRefused, the transaction rolled
    back) when a code names no tax rate. Returns (the rows deleted, the rows
    written), or None when the codes were these already."""
    ids = dict(TaxRate.objects.filter(code__in=codes).values_list("code", "id"))
    missing = {
        f"tax_codes[{i}]": [f"No tax rate has the code {code} (tax_rate --list shows them)."]
        for i, code in enumerate(codes)
        if code not in ids
    }
    if missing:
        raise AccountChangeRefused(missing)
    wanted = [ids[code] for code in codes]
    current = AccountTaxCode.objects.filter(account_id=account_id).order_by("position")
    if list(current.values_list("tax_rate_id", flat=True)) == wanted:
        return None
    deleted = list(current)
    AccountTaxCode.objects.filter(account_id=account_id).delete()
    written = AccountTaxCode.objects.bulk_create(
        AccountTaxCode(account_id=account_id, tax_rate_id=tax_rate_id, position=i)
        for i, tax_rate_id in enumerate(wanted, start=1)
    )
    return deleted, written


def _history_record(user, account, changed_fields, rewritten_tax_codes) -> None:
    """One entry of the account's admin history, written as the admin writes
    its own on a save (``construct_change_message``): the labels of the
    fields changed, then each tax code row added and deleted (the admin's
    AccountAdmin.save_formset rewrites them as a whole too)."""
    message = []
    with translation.override(None):
        if changed_fields:
            labels = [capfirst(Account._meta.get_field(f).verbose_name) for f in changed_fields]
            message.append({"changed": {"fields": labels}})
        deleted, written = rewritten_tax_codes or ([], [])
        name = str(AccountTaxCode._meta.verbose_name)
        message += [{"added": {"name": name, "object": str(row)}} for row in written]
        message += [{"deleted": {"name": name, "object": str(row)}} for row in deleted]
    LogEntry.objects.log_actions(
        user_id=user.pk,
        queryset=[account],
        action_flag=CHANGE,
        change_message=message,
        single_object=True,
    )
