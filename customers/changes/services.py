"""Applying subscription changes: ``changes_apply`` (a list of requests) and
``changes_apply_file`` (the ``amend`` command's: read, parse, apply).

Each change is validated against the state the earlier changes of the list
left (so a file may add a charge and reprice it), then written with its
SubscriptionChange row (who, when, the values before and after, as JSON
with decimals as plain strings). The writes are set-based ``update()`` of
the rows a change touches, never ``save()`` of a whole charge: a change
sets what it changes and nothing else.
"""

import datetime
from dataclasses import dataclass
from decimal import Decimal
from typing import IO

from django.conf import settings
from django.db import transaction

from core.locks import locked
from core.money import CENT
from core.users import acting_user
from customers.changes import rules
from customers.changes.parsing import ChangeRequest, change_requests
from customers.importer.parsing import parse_import_json, read_import_file
from customers.importer.problems import ImportRefused, Problems
from customers.importer.validation import CHARGE_FIELDS, CHARGE_RULES, check_unique_numbers
from customers.importer.validation import _row as import_row
from customers.importer.values import AMOUNT_LIMIT, ValueChecks
from customers.importer.writing import assign_charge_numbers
from customers.models import (
    Account,
    ChangeType,
    Charge,
    ChargePrice,
    ChargeType,
    Status,
    Subscription,
    SubscriptionChange,
)
from customers.pricing import EXACT, plain
from customers.services import pricing_create


class ChangesRefused(ImportRefused):
    """The changes were refused; none was applied. ``problems``: each
    "path: message" (``changes[2].effective_date: C00000003: ...``)."""


@dataclass(frozen=True)
class ChangesSummary:
    changes: int

    def __str__(self) -> str:
        return f"applied {self.changes} changes"


class _Refused(Exception):
    def __init__(self, path: str, refusal: rules.Refusal):
        super().__init__(refusal.message)
        self.where = f"{path}.{refusal.field}" if refusal.field else path
        self.message = refusal.message


def changes_apply_file(*, path: str, stdin: IO[bytes] | None = None, user=None) -> ChangesSummary:
    """Read, parse and apply an ``amend`` file (``-``: ``stdin``; at most
    settings.IMPORT_MAX_BYTES, as an accounts file). Raises ChangesRefused
    (ImportRefused for a file that cannot be read or is not JSON)."""
    raw = read_import_file(path=path, stdin=stdin, max_bytes=settings.IMPORT_MAX_BYTES)
    document = parse_import_json(raw=raw)
    problems = Problems()
    requests = change_requests(document, problems)
    if problems.count:
        raise ChangesRefused(problems.first, problems.count)
    return ChangesSummary(len(changes_apply(requests=requests, user=user)))


def changes_apply(*, requests: list[ChangeRequest], user=None) -> list[SubscriptionChange]:
    """Apply ``requests`` in order, each validated as the rules' table says
    against the state the earlier ones left; ``user`` is recorded as who made
    them. Returns the SubscriptionChange rows written.

    Transaction: one ``transaction.atomic()``; the first refused change
    raises ChangesRefused and rolls back every change before it (the later
    ones are not judged: they would be judged against a state that will not
    be). Locking: first the accounts of every subscription and charge the
    list names, in id order (core.locks), held to the commit; a bill run's
    chunk locks its accounts the same way, so it bills everything before the
    changes or everything after them, and a usage import cannot add a
    record a removal just refused to cut. Idempotency: none, as for an
    import: applying the same list twice refuses the second time where the
    rules do (a price already in effect, a change before another) and
    otherwise applies it again."""
    user = acting_user(user)
    written = []
    with transaction.atomic():
        _lock_accounts(requests)
        for request in requests:
            try:
                written.append(APPLY[request.change_type](request, user))
            except _Refused as refused:
                raise ChangesRefused([f"{refused.where}: {refused.message}"]) from None
            except ImportRefused as refused:
                raise ChangesRefused(refused.problems, refused.total) from None
    return written


def _account_ids(requests: list[ChangeRequest]) -> set[int]:
    subscriptions = {r.subscription for r in requests if r.subscription}
    charges = {r.charge for r in requests if r.charge}
    ids = set(
        Subscription.objects.filter(number__in=subscriptions).values_list("account_id", flat=True)
    )
    ids.update(
        Charge.objects.filter(number__in=charges).values_list("subscription__account_id", flat=True)
    )
    return ids


def _lock_accounts(requests: list[ChangeRequest]) -> None:
    """Lock the accounts the requests reach. A charge added by the list is on
    a subscription it names, so its account is among them. Read again once
    locked: a subscription or charge moved to another account in between
    (the admin moves unbilled ones) would be changed without its lock."""
    ids = _account_ids(requests)
    list(locked(Account.objects.filter(pk__in=ids)).values_list("pk", flat=True))
    if _account_ids(requests) != ids:
        raise ChangesRefused(
            [
                "(top level): a subscription or charge moved to another account meanwhile; "
                "apply the changes again"
            ]
        )


# --- the values a change records ------------------------------------------------


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(CENT))


def _decimal(value: Decimal | None) -> str | None:
    """A quantity, unit price or bound as a plain string: no exponent, no
    trailing zeros, no thousands separator (``12500``, ``0.002``)."""
    return None if value is None else plain(value).replace(",", "")


def _date(value: datetime.date | None) -> str | None:
    return None if value is None else value.isoformat()


def _pricing_json(model: str, tiers) -> dict:
    """A pricing as the import file gives it."""
    if model == "per_unit":
        return {"model": model, "unit_price": _decimal(tiers[0].unit_price)}
    return {
        "model": model,
        "tiers": [
            {
                "up_to": _decimal(tier.up_to),
                "unit_price": _decimal(tier.unit_price),
                "flat_fee": _money(tier.flat_fee),
            }
            for tier in tiers
        ],
    }


def _terms_json(terms: rules.Terms) -> dict:
    if terms.pricing_id is not None:
        return {
            "pricing": _pricing_json(terms.pricing_model, terms.pricing_tiers),
            "pricing_id": terms.pricing_id,
        }
    return {"amount": _money(terms.amount), "quantity": _decimal(terms.quantity)}


def _record(*, request, subscription, charge, effective_date, before, after, user):
    return SubscriptionChange.objects.create(
        subscription=subscription,
        charge=charge,
        change_type=request.change_type,
        effective_date=effective_date,
        before=before,
        after=after,
        made_by=user,
    )


# --- each type of change --------------------------------------------------------------


def _subscription(request: ChangeRequest) -> Subscription:
    subscription = (
        Subscription.objects.select_related("account").filter(number=request.subscription).first()
    )
    if subscription is None:
        raise _Refused(
            request.path,
            rules.Refusal("subscription", f"no subscription has the number {request.subscription}"),
        )
    return subscription


def _charge(request: ChangeRequest) -> Charge:
    charge = (
        Charge.objects.select_related("subscription__account").filter(number=request.charge).first()
    )
    if charge is None:
        raise _Refused(
            request.path, rules.Refusal("charge", f"no charge has the number {request.charge}")
        )
    refusal = rules.status_refusal(charge.subscription, who=charge.number, field="charge")
    if refusal:
        raise _Refused(request.path, refusal)
    return charge


def _add_charge(request: ChangeRequest, user) -> SubscriptionChange:
    """A new charge on an Active subscription, validated exactly as the
    accounts import validates a charge (its rules, its number unique
    ignoring case, generated when absent) and written as it writes one."""
    subscription = _subscription(request)
    refusal = rules.status_refusal(subscription, who=subscription.number, field="subscription")
    if refusal:
        raise _Refused(request.path, refusal)
    check = ValueChecks()
    path = f"{request.path}.charge"
    row = import_row(
        check,
        request.new_charge,
        path,
        CHARGE_FIELDS,
        CHARGE_RULES,
        {"currency": subscription.account.currency},
    )
    # Numbers unique ignoring case, against the database as it is now: the
    # charges earlier changes of the list added are in it.
    check_unique_numbers(check.problems, [row], Charge, "charge")
    check.problems.raise_if_any()
    assign_charge_numbers([row])
    values = dict(row.values)
    terms = values.pop("pricing")
    pricing = pricing_create(model=terms.model, tiers=terms.tiers) if terms else None
    charge = Charge.objects.create(subscription=subscription, pricing=pricing, **values)
    after = {
        "number": charge.number,
        "name": charge.name,
        "type": charge.charge_type,
        "currency": charge.currency,
        "period": charge.period or None,
        "start_date": _date(charge.start_date),
        "end_date": _date(charge.end_date),
        "taxable": charge.taxable,
    }
    if pricing is None:
        after.update(amount=_money(charge.amount), quantity=_decimal(charge.quantity))
    else:
        after.update(
            unit=charge.unit, pricing=_pricing_json(terms.model, terms.tiers), pricing_id=pricing.pk
        )
    return _record(
        request=request,
        subscription=subscription,
        charge=charge,
        effective_date=charge.start_date,
        before={},
        after=after,
        user=user,
    )


def _change_price(request: ChangeRequest, user) -> SubscriptionChange:
    """From ``D`` the charge's terms are the new ones, the others as in
    effect on ``D``: a ChargePrice segment with the full terms."""
    charge = _charge(request)
    day = request.effective_date
    refusal = rules.price_change_refusal(charge, day)
    if refusal:
        raise _Refused(request.path, refusal)
    old = rules.terms_in_effect(charge, day)
    if charge.charge_type == ChargeType.USAGE:
        given = [key for key in ("amount", "quantity") if getattr(request, key) is not None]
        if given or request.pricing is None:
            raise _Refused(
                request.path,
                rules.Refusal(
                    given[0] if given else "",
                    f"{charge.number}: a usage charge's new terms are its pricing, "
                    "not an amount or quantity",
                ),
            )
        terms = request.pricing
        new = rules.Terms(
            amount=None,
            quantity=None,
            pricing_id=0,
            pricing_model=terms.model,
            pricing_tiers=tuple(terms.tiers),
        )
    else:
        if request.pricing is not None:
            raise _Refused(
                request.path,
                rules.Refusal(
                    "pricing",
                    f"{charge.number}: a recurring charge's new terms are its amount and/or "
                    "quantity, not a pricing",
                ),
            )
        new = rules.Terms(
            amount=old.amount if request.amount is None else request.amount,
            quantity=old.quantity if request.quantity is None else request.quantity,
        )
        if abs(EXACT.multiply(new.amount, new.quantity)) >= AMOUNT_LIMIT:
            raise _Refused(
                request.path,
                rules.Refusal(
                    "amount" if request.amount is not None else "quantity",
                    f"{charge.number}: amount × quantity ({new.amount} × {plain(new.quantity)}) "
                    "must be below 10^13 in absolute value",
                ),
            )
    refusal = rules.new_terms_refusal(charge, day, old, new)
    if refusal:
        raise _Refused(request.path, refusal)
    if request.pricing is not None:
        pricing = pricing_create(model=terms.model, tiers=terms.tiers)
        new = rules.Terms(
            amount=None,
            quantity=None,
            pricing_id=pricing.pk,
            pricing_model=new.pricing_model,
            pricing_tiers=new.pricing_tiers,
        )
    change = _record(
        request=request,
        subscription=charge.subscription,
        charge=charge,
        effective_date=day,
        before=_terms_json(old),
        after=_terms_json(new),
        user=user,
    )
    ChargePrice.objects.create(
        charge=charge,
        effective_date=day,
        amount=new.amount,
        quantity=new.quantity,
        pricing_id=new.pricing_id,
        change=change,
    )
    return change


def _remove_charge(request: ChangeRequest, user) -> SubscriptionChange:
    """The charge's end date becomes ``D``; a one-time charge's its start
    date, whatever ``D``: end = start, no service, it never bills."""
    charge = _charge(request)
    day = request.effective_date
    refusal = rules.removal_refusal(charge, day)
    if refusal:
        raise _Refused(request.path, refusal)
    end = charge.start_date if charge.charge_type == ChargeType.ONE_TIME else day
    Charge.objects.filter(pk=charge.pk).update(end_date=end)
    return _record(
        request=request,
        subscription=charge.subscription,
        charge=charge,
        effective_date=day,
        before={"end_date": _date(charge.end_date)},
        after={"end_date": _date(end)},
        user=user,
    )


def _cancel_subscription(request: ChangeRequest, user) -> SubscriptionChange:
    """Every charge the cancel removes, removed; the subscription Canceled
    with cancel date ``D``. One change row: its charges' end dates before
    and after are in ``before`` and ``after``."""
    subscription = _subscription(request)
    refusal = rules.status_refusal(subscription, who=subscription.number, field="subscription")
    if refusal:
        raise _Refused(request.path, refusal)
    day = request.effective_date
    removals = rules.cancel_removals(subscription, day)
    if isinstance(removals, rules.Refusal):
        raise _Refused(request.path, removals)
    for charge, end in removals:
        Charge.objects.filter(pk=charge.pk).update(end_date=end)
    Subscription.objects.filter(pk=subscription.pk).update(status=Status.CANCELED, cancel_date=day)
    return _record(
        request=request,
        subscription=subscription,
        charge=None,
        effective_date=day,
        before={
            "status": subscription.status,
            "cancel_date": None,
            "end_dates": {charge.number: _date(charge.end_date) for charge, _ in removals},
        },
        after={
            "status": str(Status.CANCELED),
            "cancel_date": _date(day),
            "end_dates": {charge.number: _date(end) for charge, end in removals},
        },
        user=user,
    )


APPLY = {
    ChangeType.ADD_CHARGE: _add_charge,
    ChangeType.CHANGE_PRICE: _change_price,
    ChangeType.REMOVE_CHARGE: _remove_charge,
    ChangeType.CANCEL_SUBSCRIPTION: _cancel_subscription,
}
