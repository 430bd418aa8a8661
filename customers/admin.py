"""Operators' admin for customers.

A tenant holds up to a few hundred thousand accounts, so no change list or
form here renders a <select> of accounts or subscriptions (autocomplete
instead), every change list joins what it displays (list_select_related), and
the full result count, a second COUNT(*) over the whole table, is not shown.
"""

from django.contrib import admin

from core.admin import ProtectedDeleteMixin
from customers.models import Account, Charge, Subscription
from invoices.models import DocumentItem

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


class SubscriptionInline(admin.TabularInline):
    model = Subscription
    fields = ["number", "status", "start_date"]
    extra = 0
    show_change_link = True


@admin.register(Account)
class AccountAdmin(ProtectedDeleteMixin, admin.ModelAdmin):
    list_display = [
        "number",
        "name",
        "bill_to_email",
        "currency",
        "bill_cycle_day",
        "batch_label",
        "payment_term_days",
        "status",
        "created_at",
    ]
    list_filter = ["status", "currency", "batch", "bill_cycle_day"]
    search_fields = ["number", "name", "bill_to_email"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    inlines = [SubscriptionInline]

    @admin.display(description="Batch", ordering="batch")
    def batch_label(self, account):
        return account.batch_label


class ChargeInline(admin.TabularInline):
    model = Charge
    fields = [
        "name",
        "charge_type",
        "amount",
        "currency",
        "period",
        "start_date",
        "end_date",
        "charged_through_date",
    ]
    # Bill runs advance the charged-through date and canceling a run rolls it
    # back; an edit by hand would bill a period twice or never.
    readonly_fields = ["charged_through_date"]
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
class ChargeAdmin(BilledReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "name",
        "subscription",
        "account_number",
        "charge_type",
        "amount",
        "currency",
        "period",
        "start_date",
        "end_date",
        "charged_through_date",
    ]
    list_filter = ["charge_type", "period", "currency"]
    list_select_related = ["subscription__account"]
    search_fields = ["name", "subscription__number", "subscription__account__number"]
    autocomplete_fields = ["subscription"]
    readonly_fields = ["charged_through_date"]
    date_hierarchy = "start_date"
    show_full_result_count = False
    fields = [
        "subscription",
        "name",
        "charge_type",
        "amount",
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
