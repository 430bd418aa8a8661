"""Operators' admin for customers.

A tenant holds up to a few hundred thousand accounts, so no change list or
form here renders a <select> of accounts or subscriptions (autocomplete
instead), every change list joins what it displays (list_select_related), and
the full result count, a second COUNT(*) over the whole table, is not shown.
"""

from django.contrib import admin

from customers.models import Account, Charge, Subscription


class SubscriptionInline(admin.TabularInline):
    model = Subscription
    fields = ["number", "status", "start_date"]
    extra = 0
    show_change_link = True


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
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
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ["number", "account", "status", "start_date", "created_at"]
    list_filter = ["status"]
    list_select_related = ["account"]
    search_fields = ["number", "account__number", "account__name"]
    autocomplete_fields = ["account"]
    date_hierarchy = "start_date"
    show_full_result_count = False
    inlines = [ChargeInline]


@admin.register(Charge)
class ChargeAdmin(admin.ModelAdmin):
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

    @admin.display(description="Account", ordering="subscription__account__number")
    def account_number(self, charge):
        return charge.subscription.account.number
