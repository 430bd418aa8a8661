"""Operators' admin for the customers' rows whose rules depend on documents.

Subscriptions, charges and usage records are customers' models, but what may
be changed on them depends on what documents billed them, which customers
(below invoices) does not know. Their admins live here, registered with the
other admins of this app; their URLs stay under /admin/customers/, which
follows from the models' app label.
"""

import json

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.utils.html import format_html, format_html_join

from core.admin import ProtectedDeleteMixin
from core.locks import lock_one
from customers.models import (
    BILLED_TERMS,
    Account,
    Charge,
    Subscription,
    UsageRecord,
)
from customers.pricing import pricing_description
from invoices.models import DocumentItem
from invoices.usage import (
    UsageRecordRefused,
    usage_record_billed_on,
    usage_record_change,
    usage_record_change_problems,
    usage_record_delete,
)

# How many of the documents that billed a charge or subscription its page names.
BILLED_ON_SHOWN = 3


def billed_on(items):
    """The numbers of the documents (not canceled) ``items`` are on, for a
    sentence: "INV00000001, INV00000002 and 4 more", or "" if none."""
    numbers = list(
        items.filter(document_canceled=False)
        .order_by("document_id")
        .values_list("document__number", flat=True)
        .distinct()[: BILLED_ON_SHOWN + 1]
    )
    if len(numbers) > BILLED_ON_SHOWN:
        return f"{', '.join(numbers[:BILLED_ON_SHOWN])} and more"
    return ", ".join(numbers)


class BilledReadOnlyMixin(ProtectedDeleteMixin):
    """Once billed, the parent a charge or subscription hangs from is
    read-only: the documents that billed it show it under that parent, so
    moving it would make them say something else than what was billed.

    ``billed_items(obj)`` gives the items to check (through the items'
    charge, the leading column of their partial unique index);
    ``billed_parent`` names the field that becomes read-only."""

    billed_parent = ""

    def billed_items(self, obj):
        raise NotImplementedError

    def get_readonly_fields(self, request, obj=None):
        fields = [*super().get_readonly_fields(request, obj), "billing"]
        if obj is not None and billed_on(self.billed_items(obj)):
            fields.append(self.billed_parent)
        return fields

    @admin.display(description="Billed")
    def billing(self, obj):
        numbers = billed_on(self.billed_items(obj)) if obj and obj.pk else ""
        if not numbers:
            return "Not billed yet."
        verbose = self.model._meta.verbose_name
        parent = self.model._meta.get_field(self.billed_parent).verbose_name
        return (
            f"This {verbose} is billed on {numbers}: its {parent} cannot be changed, "
            f"and it cannot be deleted."
        )


# --- Subscription changes (issue 14): billed terms frozen, changes shown ---------

TERMS_FROZEN = (
    "{number} is billed: its terms no longer change by hand. Make a subscription change "
    "(manage.py amend: change_price, remove_charge, cancel_subscription)."
)


class ChargeForm(forms.ModelForm):
    """Refuses a change by hand of a billed charge's terms (BILLING_RULES.md,
    Subscription changes), on the charge's page and in its subscription's
    inline, where the fields stay editable for the charges not billed yet."""

    def clean(self):
        cleaned = super().clean()
        changed = [name for name in BILLED_TERMS if name in self.changed_data]
        if self.instance.pk and changed:
            # Under the account's lock, held to the end of the admin's
            # transaction (and so over the save): a run billing the charge
            # meanwhile locks the account first, so whether the charge is
            # billed is read after any such run committed, and none bills
            # it until this edit is saved.
            account_id = (
                Charge.objects.filter(pk=self.instance.pk)
                .values_list("subscription__account_id", flat=True)
                .get()
            )
            lock_one(Account, account_id)
            billed = Charge.objects.filter(
                pk=self.instance.pk, charged_through_date__isnull=False
            ).exists()
            if billed:
                for name in changed:
                    self.add_error(name, TERMS_FROZEN.format(number=self.instance.number))
        return cleaned


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def changes_table(changes):
    """The changes made (read-only: a change is never edited), as a table.
    A display field rather than an inline: an inline's formset would make
    every save of the page carry management data for rows nobody edits."""
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td>"
        "<td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
        (
            (
                change.id,
                change.get_change_type_display(),
                change.charge.number if change.charge_id else "",
                change.effective_date.isoformat(),
                _json(change.before),
                _json(change.after),
                change.made_by.get_username() if change.made_by_id else "",
                change.made_at.strftime("%Y-%m-%d %H:%M"),
            )
            for change in changes.select_related("charge", "made_by").order_by("pk")
        ),
    )
    if not rows:
        return "No changes."
    return format_html(
        "<table><thead><tr><th>#</th><th>Change</th><th>Charge</th><th>Effective</th>"
        "<th>Before</th><th>After</th><th>Made by</th><th>Made at (UTC)</th></tr></thead>"
        "<tbody>{}</tbody></table>",
        rows,
    )


def price_segments_table(charge):
    """A charge's price segments: from each effective date on, these terms
    (before the first, the charge's own columns)."""
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                segment.effective_date.isoformat(),
                "" if segment.amount is None else segment.amount,
                "" if segment.quantity is None else segment.quantity.normalize(),
                "" if segment.pricing_id is None else segment.pricing,
                segment.change_id,
            )
            for segment in charge.prices.select_related("pricing").order_by("effective_date")
        ),
    )
    if not rows:
        return "None: the charge's own terms are in effect throughout."
    return format_html(
        "<table><thead><tr><th>From</th><th>Amount</th><th>Quantity</th><th>Pricing</th>"
        "<th>Change #</th></tr></thead><tbody>{}</tbody></table>",
        rows,
    )


class PricingTiersMixin:
    """A charge's pricing with its tiers, as the pages write it; the
    queryset prefetches the tiers (no query per row of a list)."""

    @admin.display(description="Pricing tiers")
    def pricing_tiers(self, charge):
        if charge.pricing_id is None:
            return "—"
        return pricing_description(charge.pricing)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("pricing__tiers")


class ChargeInline(PricingTiersMixin, admin.TabularInline):
    model = Charge
    form = ChargeForm
    fields = [
        "number",
        "name",
        "charge_type",
        "amount",
        "quantity",
        "unit",
        "pricing",
        "pricing_tiers",
        "currency",
        "period",
        "start_date",
        "end_date",
        "taxable",
        "charged_through_date",
    ]
    # Bill runs advance the charged-through date and canceling a run rolls it
    # back; an edit by hand would bill a period twice or never.
    readonly_fields = ["charged_through_date", "pricing_tiers"]
    # A pricing per usage charge: never a <select> of them all.
    raw_id_fields = ["pricing"]
    extra = 0


@admin.register(Subscription)
class SubscriptionAdmin(BilledReadOnlyMixin, admin.ModelAdmin):
    list_display = ["number", "account", "status", "start_date", "created_at"]
    list_filter = ["status"]
    list_select_related = ["account"]
    search_fields = ["number", "account__number", "account__name"]
    autocomplete_fields = ["account"]
    date_hierarchy = "start_date"
    show_full_result_count = False
    inlines = [ChargeInline]
    fields = ["number", "account", "status", "start_date", "cancel_date", "billing", "changes"]
    # Set by a cancel-subscription change, with its charges' removals.
    readonly_fields = ["cancel_date", "changes"]
    billed_parent = "account"

    @admin.display(description="Changes")
    def changes(self, subscription):
        return changes_table(subscription.changes) if subscription and subscription.pk else ""

    def billed_items(self, subscription):
        return DocumentItem.objects.filter(charge__subscription=subscription)


@admin.register(Charge)
class ChargeAdmin(PricingTiersMixin, BilledReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "number",
        "name",
        "subscription",
        "account_number",
        "charge_type",
        "amount",
        "quantity",
        "unit",
        "pricing_tiers",
        "currency",
        "period",
        "start_date",
        "end_date",
        "taxable",
        "charged_through_date",
    ]
    list_filter = ["charge_type", "period", "currency", "taxable"]
    list_select_related = ["subscription__account", "pricing"]
    search_fields = ["number", "name", "subscription__number", "subscription__account__number"]
    autocomplete_fields = ["subscription"]
    raw_id_fields = ["pricing"]
    readonly_fields = ["charged_through_date", "pricing_tiers", "price_segments", "changes"]
    form = ChargeForm
    date_hierarchy = "start_date"
    show_full_result_count = False
    fields = [
        "number",
        "subscription",
        "name",
        "charge_type",
        "amount",
        "quantity",
        "unit",
        "pricing",
        "pricing_tiers",
        "currency",
        "period",
        "start_date",
        "end_date",
        "taxable",
        "charged_through_date",
        "billing",
        "price_segments",
        "changes",
    ]
    billed_parent = "subscription"

    @admin.display(description="Price segments")
    def price_segments(self, charge):
        return price_segments_table(charge) if charge and charge.pk else ""

    @admin.display(description="Changes")
    def changes(self, charge):
        return changes_table(charge.changes) if charge and charge.pk else ""

    def billed_items(self, charge):
        return DocumentItem.objects.filter(charge=charge)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.charged_through_date is not None:
            fields.extend(name for name in BILLED_TERMS if name not in fields)
        return fields

    @admin.display(description="Billed")
    def billing(self, obj):
        said = super().billing(obj)
        if obj is not None and obj.charged_through_date is not None:
            return f"{said} {TERMS_FROZEN.format(number=obj.number)}"
        return said

    @admin.display(description="Account", ordering="subscription__account__number")
    def account_number(self, charge):
        return charge.subscription.account.number


# --- Usage records (issue 13) -------------------------------------------------


class UsageRecordForm(forms.ModelForm):
    class Meta:
        model = UsageRecord
        fields = ["date", "quantity"]

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk and "date" in cleaned and "quantity" in cleaned:
            # Under the account's lock, held to the end of the admin's transaction.
            problems = usage_record_change_problems(
                record_id=self.instance.pk, day=cleaned["date"], quantity=cleaned["quantity"]
            )
            for field, message in problems.items():
                self.add_error(field, message)
        return cleaned


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    """Usage comes from ``import_usage``. A record not billed yet may be
    corrected (its date and quantity) or deleted; once a live item of its
    charge covers its date it is read-only: the document shows it."""

    form = UsageRecordForm
    list_display = [
        "record_id",
        "charge_number",
        "account_number",
        "date",
        "quantity",
        "imported_at",
    ]
    list_select_related = ["charge__subscription__account"]
    # Exact matches only: a substring search would read millions of records.
    search_fields = ["=record_id", "=charge__number"]
    # By id, which the primary key's index serves; nothing else is indexed alone.
    ordering = ["record_id"]
    show_full_result_count = False
    fields = ["record_id", "charge_number", "date", "quantity", "imported_at", "billing"]
    readonly_fields = ["record_id", "charge_number", "imported_at", "billing"]

    def billed_on(self, record):
        if record is None or not record.pk:
            return None
        return usage_record_billed_on(charge_id=record.charge_id, day=record.date)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and not self.billed_on(obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and not self.billed_on(obj)

    def get_actions(self, request):
        # One record at a time, each checked under its account's lock.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def save_model(self, request, obj, form, change):
        try:
            usage_record_change(record_id=obj.pk, day=obj.date, quantity=obj.quantity)
        except UsageRecordRefused as refused:
            raise PermissionDenied(str(refused)) from refused

    def delete_model(self, request, obj):
        try:
            usage_record_delete(record_id=obj.pk)
        except UsageRecordRefused as refused:
            raise PermissionDenied(str(refused)) from refused

    @admin.display(description="Charge", ordering="charge__number")
    def charge_number(self, record):
        return record.charge.number

    @admin.display(description="Account", ordering="charge__subscription__account__number")
    def account_number(self, record):
        return record.charge.subscription.account.number

    @admin.display(description="Billed")
    def billing(self, record):
        number = self.billed_on(record)
        if number:
            return f"Billed on {number}: read-only."
        return "Not billed yet: its date and quantity may be corrected."
