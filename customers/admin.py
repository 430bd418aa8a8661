"""Operators' admin for customers.

A tenant holds up to a few hundred thousand accounts, so no change list or
form here renders a <select> of accounts or subscriptions (autocomplete
instead), every change list joins what it displays (list_select_related), and
the full result count, a second COUNT(*) over the whole table, is not shown.

The admins of subscriptions, charges and usage records are in
invoices/admin_customers.py: what they allow depends on what documents billed
those rows, which this app, below invoices, does not know.
"""

from decimal import Decimal

from django import forms
from django.contrib import admin

from core.admin import ProtectedDeleteMixin
from core.locks import lock_one
from customers.models import Account, Pricing, PricingTier, Subscription
from customers.pricing import Tier, pricing_problems
from customers.selectors import account_has_billed_charges
from customers.services import pricing_tiers_write


class SubscriptionInline(admin.TabularInline):
    model = Subscription
    fields = ["number", "status", "start_date"]
    extra = 0
    show_change_link = True


BCD_FROZEN = (
    "A charge of this account is billed: its bill cycle day no longer changes by hand "
    "(BILLING_RULES.md, Subscription changes)."
)


class AccountForm(forms.ModelForm):
    def clean(self):
        cleaned = super().clean()
        if self.instance.pk and "bill_cycle_day" in self.changed_data:
            # Under the account's lock, held to the end of the admin's
            # transaction: a run that bills a charge of it meanwhile locks
            # the account first, so either it billed before this check or
            # it bills after the save, at the day saved.
            lock_one(Account, self.instance.pk)
            if account_has_billed_charges(self.instance.pk):
                self.add_error("bill_cycle_day", BCD_FROZEN)
        return cleaned


@admin.register(Account)
class AccountAdmin(ProtectedDeleteMixin, admin.ModelAdmin):
    form = AccountForm
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

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and account_has_billed_charges(obj.pk):
            fields.append("bill_cycle_day")
        return fields

    @admin.display(description="Batch", ordering="batch")
    def batch_label(self, account):
        return account.batch_label


# --- Usage: pricings (issue 13) -----------------------------------------------


class PricingTierFormSet(forms.BaseInlineFormSet):
    """A new pricing's tiers, checked as a whole (ordered, the last unbounded,
    one for per unit), as the services write them."""

    def tiers(self) -> list[Tier]:
        tiers = []
        for form in self.forms:
            data = form.cleaned_data
            if data and not data.get("DELETE"):
                flat_fee = data.get("flat_fee")
                tiers.append(
                    Tier(
                        data.get("up_to"),
                        data["unit_price"],
                        Decimal(0) if flat_fee is None else flat_fee,
                    )
                )
        return tiers

    def clean(self):
        super().clean()
        if any(self.errors) or not self.instance.model:
            return
        problems = pricing_problems(model=self.instance.model, tiers=self.tiers())
        if problems:
            raise forms.ValidationError([f"{where}: {message}" for where, message in problems])


class PricingTierInline(admin.TabularInline):
    model = PricingTier
    formset = PricingTierFormSet
    fields = ["from_quantity", "up_to", "unit_price", "flat_fee"]
    readonly_fields = ["from_quantity"]
    extra = 3

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return obj is None and super().has_delete_permission(request, obj)

    def has_add_permission(self, request, obj=None):
        return obj is None and super().has_add_permission(request, obj)


@admin.register(Pricing)
class PricingAdmin(ProtectedDeleteMixin, admin.ModelAdmin):
    """A pricing is a value: added with its tiers (the lower bounds follow from
    the upper ones), never changed afterwards; a usage charge points at it."""

    list_display = ["__str__", "model", "created_at"]
    list_filter = ["model"]
    show_full_result_count = False
    inlines = [PricingTierInline]

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def save_related(self, request, form, formsets, change):
        form.save_m2m()
        for formset in formsets:
            if isinstance(formset, PricingTierFormSet):
                pricing_tiers_write(pricing=form.instance, tiers=formset.tiers())
                # What formset.save() would have said, for the admin's history.
                formset.new_objects = list(form.instance.tiers.all())
                formset.changed_objects, formset.deleted_objects = [], []
