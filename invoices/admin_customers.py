"""Operators' admin for the customers' rows whose rules depend on documents.

Subscriptions, charges and usage records are customers' models, but what may
be changed on them depends on what documents billed them, which customers
(below invoices) does not know. Their admins live here, registered with the
other admins of this app; their URLs stay under /admin/customers/, which
follows from the models' app label.
"""

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied

from core.admin import ProtectedDeleteMixin
from customers.models import Charge, Subscription, UsageRecord
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
    fields = ["number", "account", "status", "start_date", "billing"]
    billed_parent = "account"

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
        "charged_through_date",
    ]
    list_filter = ["charge_type", "period", "currency"]
    list_select_related = ["subscription__account", "pricing"]
    search_fields = ["number", "name", "subscription__number", "subscription__account__number"]
    autocomplete_fields = ["subscription"]
    raw_id_fields = ["pricing"]
    readonly_fields = ["charged_through_date", "pricing_tiers"]
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
        "charged_through_date",
        "billing",
    ]
    billed_parent = "subscription"

    def billed_items(self, charge):
        return DocumentItem.objects.filter(charge=charge)

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
