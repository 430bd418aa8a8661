"""Operators' admin for documents, payments and the tenant settings.

Documents are made by bill runs and change status only through the posting
and canceling services, which keep charged-through dates, balances and
numbers consistent. Here they are never added or deleted by hand, a Draft
document allows only its due date to be changed, and a Posted or Canceled
document is read-only. Payments and credit applications move balances, so
they are recorded through services too and are read-only here.
"""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import reverse

from invoices.admin_actions import PostDocumentsAdminMixin, post_selected_documents
from invoices.models import (
    CreditApplication,
    CreditMemo,
    DocumentItem,
    DocumentStatus,
    Invoice,
    NumberSequence,
    Payment,
    TenantSettings,
)


class ReadOnlyAdminMixin:
    """Viewable by whoever holds the view permission; never written here."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(ReadOnlyAdminMixin, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def get_readonly_fields(self, request, obj=None):
        return self.fields


@admin.register(TenantSettings)
class TenantSettingsAdmin(admin.ModelAdmin):
    """The one settings row: the change list is its change form."""

    fields = ["advanced_ar_settlement", "updated_at"]
    readonly_fields = ["updated_at"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        settings = TenantSettings.load()
        return HttpResponseRedirect(
            reverse("admin:invoices_tenantsettings_change", args=[settings.pk])
        )


@admin.register(NumberSequence)
class NumberSequenceAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["name", "last_value"]


class DocumentItemInline(ReadOnlyInline):
    model = DocumentItem
    fields = [
        "subscription",
        "charge_name",
        "service_start",
        "service_end",
        "amount",
        "previous_charged_through",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("subscription")


class PaymentInline(ReadOnlyInline):
    model = Payment
    fields = ["amount", "payment_date", "method", "reference", "created_by", "created_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by")


class CreditAppliedInline(ReadOnlyInline):
    model = CreditApplication
    fk_name = "invoice"
    verbose_name = "credit applied"
    verbose_name_plural = "credits applied"
    fields = ["credit_memo", "amount", "applied_at", "applied_by"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("credit_memo", "applied_by")


class CreditMadeInline(ReadOnlyInline):
    model = CreditApplication
    fk_name = "credit_memo"
    verbose_name = "application"
    verbose_name_plural = "applied to invoices"
    fields = ["invoice", "amount", "applied_at", "applied_by"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("invoice", "applied_by")


class DocumentAdmin(PostDocumentsAdminMixin, admin.ModelAdmin):
    actions = [post_selected_documents]
    list_display = [
        "number",
        "account",
        "status",
        "currency",
        "amount",
        "balance",
        "invoice_date",
        "due_date",
        "bill_run",
        "posted_at",
    ]
    list_filter = ["status", "currency"]
    list_select_related = ["account", "bill_run"]
    search_fields = ["number", "account__number", "account__name", "bill_run__number"]
    date_hierarchy = "invoice_date"
    show_full_result_count = False
    fields = [
        "number",
        "document_type",
        "account",
        "bill_run",
        "status",
        "currency",
        "amount",
        "balance",
        "invoice_date",
        "due_date",
        "created_at",
        "posted_at",
        "posted_by",
        "canceled_at",
        "canceled_by",
    ]
    # The due date is the one thing a clerk may correct before posting (a
    # term agreed after the run); everything else follows from the run.
    readonly_fields = [f for f in fields if f != "due_date"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.status != DocumentStatus.DRAFT:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        # Draft documents go away with their run (cancel, then delete), which
        # also rolls back the charged-through dates they advanced.
        return False


@admin.register(Invoice)
class InvoiceAdmin(DocumentAdmin):
    inlines = [DocumentItemInline, PaymentInline, CreditAppliedInline]


@admin.register(CreditMemo)
class CreditMemoAdmin(DocumentAdmin):
    inlines = [DocumentItemInline, CreditMadeInline]


@admin.register(DocumentItem)
class DocumentItemAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "document",
        "subscription",
        "charge_name",
        "service_start",
        "service_end",
        "amount",
        "document_canceled",
    ]
    list_filter = ["document_canceled"]
    list_select_related = ["document", "subscription"]
    search_fields = ["document__number", "subscription__number", "charge_name"]
    raw_id_fields = ["document", "charge", "subscription"]
    date_hierarchy = "service_start"
    show_full_result_count = False


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["document", "amount", "payment_date", "method", "reference", "created_by"]
    list_filter = ["method"]
    list_select_related = ["document", "created_by"]
    search_fields = ["document__number", "document__account__number", "reference"]
    raw_id_fields = ["document", "created_by"]
    date_hierarchy = "payment_date"
    show_full_result_count = False


@admin.register(CreditApplication)
class CreditApplicationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["credit_memo", "invoice", "amount", "applied_at", "applied_by"]
    list_select_related = ["credit_memo", "invoice", "applied_by"]
    search_fields = ["credit_memo__number", "invoice__number"]
    raw_id_fields = ["credit_memo", "invoice", "applied_by"]
    date_hierarchy = "applied_at"
    show_full_result_count = False
