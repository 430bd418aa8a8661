"""A subscription change made from the pages, with its preview: what the
next bill run will make for the charges it concerns (BILLING_RULES.md,
Subscription changes and adjustments; INTERFACES.md, Pages).

The preview is computed by applying the change with the change services
(``customers.changes.changes_apply``: the same rules, messages and locks as
``amend``) inside a transaction, asking the engine what a run with target
date ``max(today, effective date)`` would make for the account
(``generation.account_next_run``: a chunk's own reads and ``bill_account``),
and rolling the transaction back: nothing of a preview stays (on
PostgreSQL only an added charge's generated number is used up, as numbers
are gap-tolerant, customers/numbers.py). Confirming does the same and
commits, but only when what the run would make is still what the clerk
saw (the preview's ``digest``, which also covers the subscription's latest
change): a run or another change in between, or the same form submitted
twice, shows the new preview instead of applying.
"""

import datetime
import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.db.models import Max

from billruns import engine, generation
from customers.changes import ChangeRequest, ChangesRefused, changes_apply
from customers.models import ChangeType, Charge, SubscriptionChange
from invoices.models import DocumentItem, ItemKind, adjustment_description


@dataclass(frozen=True)
class PreviewRow:
    """One item the next run makes for a charge concerned."""

    charge_number: str
    charge_name: str
    kind: str
    start: datetime.date
    end: datetime.date  # inclusive, as items show it
    quantity: Decimal | None
    unit: str
    amount: Decimal
    rating: str
    corrects: str = ""  # an adjustment: the document of the item it corrects

    @property
    def is_adjustment(self) -> bool:
        return self.kind == ItemKind.ADJUSTMENT

    @property
    def description(self) -> str:
        if not self.is_adjustment:
            return self.charge_name
        return adjustment_description(
            charge_name=self.charge_name,
            unit=self.unit,
            start=self.start,
            end=self.end,
            amount=self.amount,
        )


@dataclass
class ChangePreview:
    """What the next run (``target_date``) makes for the charges a change
    concerns, or why it would fail the account; ``applied`` once committed."""

    target_date: datetime.date
    currency: str
    rows: list[PreviewRow] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    # Other charges of the account the same run bills too (not shown).
    other_items: int = 0
    digest: str = ""
    applied: bool = False
    changes: list[SubscriptionChange] = field(default_factory=list)

    @property
    def adjustments(self) -> list[PreviewRow]:
        return [row for row in self.rows if row.is_adjustment]

    @property
    def pieces(self) -> list[PreviewRow]:
        return [row for row in self.rows if not row.is_adjustment]

    @property
    def total(self) -> Decimal:
        return sum((row.amount for row in self.rows), Decimal("0.00"))


class PreviewChanged(Exception):
    """Confirmed, but what the next run makes is no longer what was
    previewed: nothing was applied; ``preview`` is the new one."""

    def __init__(self, preview: ChangePreview):
        super().__init__(
            "What the next bill run makes for this change has changed since the preview."
        )
        self.preview = preview


def subscription_change_make(
    *,
    request: ChangeRequest,
    user,
    today: datetime.date,
    confirm: str | None = None,
) -> ChangePreview:
    """Preview ``request`` (``confirm`` None), or apply it when ``confirm`` is
    the digest of its preview as it still is.

    Raises ChangesRefused (the rules' message; nothing changed),
    engine.AccountComputationError (a run could not compute the account;
    nothing changed) or PreviewChanged (nothing applied).

    Transaction: one ``transaction.atomic()``, rolled back unless confirmed
    and unchanged. Locking: ``changes_apply``'s (the accounts, in id order),
    held while the engine reads, as a run's chunk holds them. Idempotency:
    the digest covers the subscription's latest change, so a confirmation
    submitted twice applies once and the second shows the new preview."""
    with transaction.atomic():
        written = changes_apply(requests=[request], user=user)
        change = written[0]
        preview = _preview(change, today=today)
        if confirm is None or confirm != preview.digest:
            transaction.set_rollback(True)
            if confirm is not None:
                raise PreviewChanged(preview)
            return preview
        preview.applied = True
        preview.changes = written
    return preview


def _concerned(change: SubscriptionChange) -> list[Charge]:
    """The charges a change concerns: its own, or a cancellation's whole
    subscription's."""
    if change.change_type == ChangeType.CANCEL_SUBSCRIPTION:
        return list(Charge.objects.filter(subscription_id=change.subscription_id).order_by("id"))
    return [Charge.objects.get(pk=change.charge_id)]


def _preview(change: SubscriptionChange, *, today: datetime.date) -> ChangePreview:
    subscription = change.subscription
    account = subscription.account
    target = max(today, change.effective_date)
    preview = ChangePreview(target_date=target, currency=account.currency)
    charges = _concerned(change)
    position = {charge.pk: index for index, charge in enumerate(charges)}
    result = generation.account_next_run(account.pk, target_date=target)
    if result is not None and result.failures:
        preview.failures = [failure.reason for failure in result.failures]
    elif result is not None:
        items = [item for item in result.items if item.charge_id in position]
        preview.other_items = len(result.items) - len(items)
        corrected = dict(
            DocumentItem.objects.filter(
                pk__in=[item.adjusts_id for item in items if item.adjusts_id]
            ).values_list("pk", "document__number")
        )
        by_id = {charge.pk: charge for charge in charges}
        preview.rows = [
            PreviewRow(
                charge_number=by_id[item.charge_id].number,
                charge_name=item.charge_name,
                kind=item.kind,
                start=item.start,
                end=item.end - engine.ONE_DAY,
                quantity=item.quantity,
                unit=item.unit,
                amount=item.amount,
                rating=item.rating,
                corrects=corrected.get(item.adjusts_id, ""),
            )
            for item in sorted(
                items, key=lambda item: (position[item.charge_id], item.kind != "adjustment")
            )
        ]
    # The subscription's latest change before this one: another change in
    # between (or this one, applied by a first submit) makes another digest.
    before = (
        SubscriptionChange.objects.filter(subscription_id=subscription.pk)
        .exclude(pk=change.pk)
        .aggregate(latest=Max("id"))["latest"]
    )
    preview.digest = _digest(before, preview, position, charges)
    return preview


def _digest(before, preview: ChangePreview, position, charges) -> str:
    # Charges by their place among those concerned, not by number: an added
    # charge's generated number differs between preview and confirmation on
    # PostgreSQL (its sequence does not roll back).
    index = {charge.number: position[charge.pk] for charge in charges}
    content = [
        before,
        preview.target_date.isoformat(),
        preview.failures,
        [
            [
                index[row.charge_number],
                row.kind,
                row.start.isoformat(),
                row.end.isoformat(),
                str(row.amount),
                None if row.quantity is None else str(row.quantity),
                row.corrects,
            ]
            for row in preview.rows
        ],
    ]
    return hashlib.sha256(json.dumps(content).encode()).hexdigest()


__all__ = [
    "ChangePreview",
    "ChangesRefused",
    "PreviewChanged",
    "PreviewRow",
    "subscription_change_make",
]
