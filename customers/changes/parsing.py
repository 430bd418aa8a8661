"""An ``amend`` file as change requests (INTERFACES.md, "Subscription
changes"): ``{"changes": [...]}``, each change an object whose ``type`` says
which fields it takes. Every malformed field is reported with its JSON path
(``changes[2].effective_date: ...``); the rules, which need the database, are
``rules.py``'s.

A field's value is checked as the accounts import checks it (its
``ValueChecks``: dates, amounts, quantities, numbers' text); a new price's
``pricing`` is read by the import's own reader of a usage charge's pricing,
and an added charge is validated by the import's charge rules when it is
applied (its currency defaults to its account's)."""

import datetime
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from customers.importer.problems import Problems
from customers.importer.validation import PricingTerms
from customers.importer.validation import _pricing as pricing_terms
from customers.importer.values import ValueChecks, type_name
from customers.models import ChangeType

# The fields of each type of change, ``type`` included.
CHANGE_FIELDS = {
    ChangeType.ADD_CHARGE: frozenset({"type", "subscription", "charge"}),
    ChangeType.CHANGE_PRICE: frozenset(
        {"type", "charge", "effective_date", "amount", "quantity", "pricing"}
    ),
    ChangeType.REMOVE_CHARGE: frozenset({"type", "charge", "effective_date"}),
    ChangeType.CANCEL_SUBSCRIPTION: frozenset({"type", "subscription", "effective_date"}),
}
CHANGE_TYPES = tuple(str(value) for value in ChangeType.values)
# A number's column (customers.models): longer is no number of ours.
NUMBER_MAX_LENGTH = 64


@dataclass(frozen=True)
class ChangeRequest:
    """One change as the file gives it, its values checked: ``path`` is where
    it is in the file (``changes[2]``), for the refusals of its rules.

    ``subscription`` for add_charge and cancel_subscription, ``charge`` (a
    number) for the others; ``new_charge`` the added charge's object, as the
    import takes it; ``amount``, ``quantity``, ``pricing``: a new price's
    terms, each None when not given."""

    path: str
    change_type: str
    effective_date: datetime.date | None = None
    subscription: str | None = None
    charge: str | None = None
    new_charge: dict | None = None
    amount: Decimal | None = None
    quantity: Decimal | None = None
    pricing: PricingTerms | None = None


def change_requests(document: Any, problems: Problems) -> list[ChangeRequest]:
    """The document's changes as requests, in order; each malformed field is
    added to ``problems`` (and its change left out)."""
    check = ValueChecks()
    check.problems = problems
    if not isinstance(document, dict):
        problems.add(
            "(top level)",
            f'must be a JSON object with a "changes" array, not {type_name(document)}',
        )
        return []
    check.known_fields(document, frozenset({"changes"}), "(top level)")
    if "changes" not in document:
        problems.add("changes", "required field is missing")
        return []
    changes = document["changes"]
    if not isinstance(changes, list):
        problems.add("changes", f"must be an array, not {type_name(changes)}")
        return []
    requests = []
    for i, obj in enumerate(changes):
        count = problems.count
        request = _request(check, obj, f"changes[{i}]")
        if request is not None and problems.count == count:
            requests.append(request)
    return requests


def _request(check: ValueChecks, obj: Any, path: str) -> ChangeRequest | None:
    if not isinstance(obj, dict):
        check.problems.add(path, f"must be an object, not {type_name(obj)}")
        return None
    change_type = check.choice(obj, "type", path, choices=CHANGE_TYPES)
    if change_type is None:
        return None
    check.known_fields(obj, CHANGE_FIELDS[change_type], path)
    if change_type == ChangeType.ADD_CHARGE:
        new_charge = obj.get("charge")
        if new_charge is None:
            check.problems.add(f"{path}.charge", check.missing_or_null(obj, "charge"))
        elif not isinstance(new_charge, dict):
            check.problems.add(f"{path}.charge", f"must be an object, not {type_name(new_charge)}")
        return ChangeRequest(
            path=path,
            change_type=change_type,
            subscription=_number(check, obj, "subscription", path),
            new_charge=new_charge if isinstance(new_charge, dict) else None,
        )
    effective_date = check.date(obj, "effective_date", path, required=True)
    if change_type == ChangeType.CANCEL_SUBSCRIPTION:
        return ChangeRequest(
            path=path,
            change_type=change_type,
            effective_date=effective_date,
            subscription=_number(check, obj, "subscription", path),
        )
    request = ChangeRequest(
        path=path,
        change_type=change_type,
        effective_date=effective_date,
        charge=_number(check, obj, "charge", path),
    )
    if change_type == ChangeType.REMOVE_CHARGE:
        return request
    return _new_terms(check, obj, path, request)


def _new_terms(check: ValueChecks, obj: dict, path: str, request: ChangeRequest) -> ChangeRequest:
    """A change of price gives a recurring charge's new amount and/or
    quantity, or a usage charge's new pricing (which the rules match to the
    charge's type); a field given as null is a mistake, not "unchanged"."""
    given = [key for key in ("amount", "quantity", "pricing") if key in obj]
    if not given:
        check.problems.add(
            path,
            "a change_price gives the new amount and/or quantity (recurring) "
            "or the new pricing (usage)",
        )
        return request
    amount = check.amount(obj, path) if "amount" in obj else None
    quantity = None
    if "quantity" in obj:
        if obj["quantity"] is None:
            check.problems.add(f"{path}.quantity", "must not be null")
        else:
            quantity = check.quantity(obj, path)
    pricing = pricing_terms(check, obj, path) if "pricing" in obj else None
    return ChangeRequest(
        path=path,
        change_type=request.change_type,
        effective_date=request.effective_date,
        charge=request.charge,
        amount=amount,
        quantity=quantity,
        pricing=pricing,
    )


def _number(check: ValueChecks, obj: dict, key: str, path: str) -> str | None:
    """A charge's or subscription's number, compared exactly when applied."""
    return check.text(obj, key, path, max_length=NUMBER_MAX_LENGTH, required=True)
