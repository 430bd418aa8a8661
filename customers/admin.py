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

from core.admin import ProtectedDeleteMixin, ReadOnlyInline
from core.locks import lock_one
from customers.models import (
    Account,
    AccountTaxCode,
    Pricing,
    PricingTier,
    Subscription,
    TaxRate,
    TaxRateChange,
)
from customers.pricing import Tier, pricing_problems
from customers.selectors import account_has_billed_charges
from customers.services import pricing_tiers_write, tax_rate_set


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


class AccountTaxCodeFormSet(forms.BaseInlineFormSet):
    """The account's tax codes in their order: each code once, each position
    once (the formset's unique checks); saved as a whole by AccountAdmin."""

    def kept(self) -> list[TaxRate]:
        """The tax rates kept, in the order of their positions."""
        rows = [
            (form.cleaned_data["position"], form.cleaned_data["tax_rate"])
            for form in self.forms
            if form.cleaned_data
            and not form.cleaned_data.get("DELETE")
            and form.cleaned_data.get("tax_rate") is not None
        ]
        return [tax_rate for _, tax_rate in sorted(rows, key=lambda row: row[0])]


class AccountTaxCodeInline(admin.TabularInline):
    """The account's tax codes: its documents' tax lines follow their order
    (position 1 first)."""

    model = AccountTaxCode
    formset = AccountTaxCodeFormSet
    fields = ["position", "tax_rate"]
    ordering = ["position"]
    extra = 1
    verbose_name = "tax code"
    verbose_name_plural = "tax codes (a run taxes the account's documents at these rates)"


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
    inlines = [AccountTaxCodeInline, SubscriptionInline]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and account_has_billed_charges(obj.pk):
            fields.append("bill_cycle_day")
        return fields

    def save_formset(self, request, form, formset, change):
        if not isinstance(formset, AccountTaxCodeFormSet):
            return super().save_formset(request, form, formset, change)
        # Rewritten as a whole, positions 1, 2, ... in the order given: a
        # swap of two positions saved row by row would collide with the
        # unique position. Under the account's lock (core.locks), as a run
        # reads the account's codes after locking it.
        account = form.instance
        lock_one(Account, account.pk)
        before = list(account.tax_codes.order_by("position").values_list("tax_rate_id", flat=True))
        kept = formset.kept()
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        if [tax_rate.pk for tax_rate in kept] == before:
            return None
        formset.deleted_objects = list(account.tax_codes.all())
        account.tax_codes.all().delete()
        formset.new_objects = AccountTaxCode.objects.bulk_create(
            AccountTaxCode(account=account, tax_rate=tax_rate, position=i)
            for i, tax_rate in enumerate(kept, start=1)
        )
        return None

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


# --- Taxes (issue 15) ---------------------------------------------------------


class TaxRateChangeInline(ReadOnlyInline):
    """Every change of the rate, with who made it (read-only)."""

    model = TaxRateChange
    fields = ["changed_at", "changed_by", "old_name", "new_name", "old_rate", "new_rate"]
    ordering = ["-changed_at", "-id"]
    show_change_link = False


@admin.register(TaxRate)
class TaxRateAdmin(admin.ModelAdmin):
    """Tax rates, created and changed through ``tax_rate_set``, which records
    each change with the operator who made it. Never deleted: the history of
    its changes keeps it (an account stops using a rate when its code is
    taken off the account)."""

    list_display = ["code", "name", "rate", "updated_at"]
    search_fields = ["code", "name"]
    fields = ["code", "name", "rate", "updated_at"]
    readonly_fields = ["updated_at"]
    inlines = [TaxRateChangeInline]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields.insert(0, "code")
        return fields

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        saved = tax_rate_set(obj.code, obj.rate, name=obj.name, user=request.user)
        obj.pk, obj.name, obj.rate, obj.updated_at = (
            saved.pk,
            saved.name,
            saved.rate,
            saved.updated_at,
        )
