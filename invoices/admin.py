"""Operators' admin for documents, payments and the tenant settings.

Documents are made by bill runs and change status only through the posting
and canceling services, which keep charged-through dates, balances and
numbers consistent. Here they are never added or deleted by hand, a Draft
document allows only its due date to be changed, and a Posted or Canceled
document is read-only. Payments and credit applications move balances, so
they are recorded through services too and are read-only here.
"""

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from core.admin import ReadOnlyAdminMixin, ReadOnlyInline
from core.money import format_plain
from invoices import admin_customers  # noqa: F401 - registers subscriptions, charges, usage
from invoices.admin_actions import PostDocumentsAdminMixin, post_selected_documents
from invoices.forms import CreditMemoApplyForm, PaymentForm
from invoices.models import (
    CreditApplication,
    CreditMemo,
    DocumentDelivery,
    DocumentItem,
    DocumentStatus,
    Invoice,
    NumberSequence,
    Payment,
    TenantSettings,
)
from invoices.selectors import PAYMENT_ORDER
from invoices.services import DocumentActionRefused, payment_record


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


def quantity_text(item):
    """``12,500 calls``, ``3``; "—" for an item billed before quantities."""
    if item.quantity is None:
        return "—"
    return f"{format_plain(item.quantity)} {item.unit}".rstrip()


class DocumentItemInline(ReadOnlyInline):
    model = DocumentItem
    fields = [
        "subscription",
        "charge_number",
        "charge_name",
        "service_start",
        "service_end",
        "quantity_and_unit",
        "unit_price",
        "amount",
        "rating",
        "previous_charged_through",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("subscription", "charge")

    @admin.display(description="Charge")
    def charge_number(self, item):
        return item.charge.number

    @admin.display(description="Quantity")
    def quantity_and_unit(self, item):
        return quantity_text(item)


class PaymentInline(ReadOnlyInline):
    model = Payment
    ordering = PAYMENT_ORDER
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


class DocumentDeliveryInline(ReadOnlyInline):
    model = DocumentDelivery
    fields = [
        "to_address",
        "status",
        "attempts",
        "resend",
        "resend_request",
        "requested_by",
        "created_at",
        "sent_at",
        "last_error",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("requested_by")


class DocumentAdmin(PostDocumentsAdminMixin, admin.ModelAdmin):
    actions = [post_selected_documents]
    change_form_template = "admin/invoices/document_change_form.html"
    action_form_template = "admin/invoices/document_action_form.html"
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
        "posted_by",
    ]
    # Who posted or canceled, and when: the audit questions an operator asks
    # of the list. The user filters list the (few) users, not the documents.
    list_filter = ["status", "currency", "posted_at", "posted_by", "canceled_at", "canceled_by"]
    list_select_related = ["account", "bill_run", "posted_by"]
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

    def get_inlines(self, request, obj):
        # Only posted documents are emailed. Leaving the deliveries off a
        # Draft also keeps its due-date form free of one more inline's
        # management form.
        if obj is not None and obj.status != DocumentStatus.DRAFT:
            return [*self.inlines, DocumentDeliveryInline]
        return self.inlines

    def document_actions(self, request, document):
        """(label, url) of the buttons on the document's change page."""
        return []

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["document_actions"] = self.document_actions(request, obj) if obj else []
        return super().render_change_form(request, context, add, change, form_url, obj)

    def action_url(self, name, document):
        return reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_{name}", args=[document.pk]
        )

    def action_urls(self, views):
        """URLs ``<id>/<slug>/`` for ``views``: (slug, name, view) triples."""
        return [
            path(
                f"<path:object_id>/{slug}/",
                self.admin_site.admin_view(view),
                name=f"{self.opts.app_label}_{self.opts.model_name}_{name}",
            )
            for slug, name, view in views
        ]

    def document_for_action(self, request, object_id, permission):
        """The document, if the user may see it and holds ``permission``."""
        document = self.get_object(request, unquote(object_id))
        if document is None:
            return None
        if not (self.has_view_permission(request, document) and request.user.has_perm(permission)):
            raise PermissionDenied
        return document

    def render_action_form(self, request, document, form, title):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": document,
            "title": title,
            "subtitle": str(document),
            "adminform": helpers.AdminForm(form, [(None, {"fields": list(form.fields)})], {}),
        }
        return TemplateResponse(request, self.action_form_template, context)


@admin.register(Invoice)
class InvoiceAdmin(DocumentAdmin):
    inlines = [DocumentItemInline, PaymentInline, CreditAppliedInline]

    def get_urls(self):
        # Before the default URLs: their catch-all "<path:object_id>/" would
        # take "<id>/record-payment/" too.
        return [
            *self.action_urls([("record-payment", "record_payment", self.record_payment_view)]),
            *super().get_urls(),
        ]

    @staticmethod
    def can_take_payment(invoice):
        return invoice.status == DocumentStatus.POSTED and invoice.balance > 0

    def document_actions(self, request, document):
        if self.can_take_payment(document) and request.user.has_perm("invoices.add_payment"):
            return [("Record payment", self.action_url("record_payment", document))]
        return []

    def record_payment_view(self, request, object_id):
        invoice = self.document_for_action(request, object_id, "invoices.add_payment")
        if invoice is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        change_url = self.action_url("change", invoice)
        if request.method == "POST":
            form = PaymentForm(request.POST)
            if form.is_valid():
                try:
                    payment = payment_record(
                        document_id=invoice.pk, user=request.user, **form.cleaned_data
                    )
                except DocumentActionRefused as refusal:
                    form.add_error(None, str(refusal))
                else:
                    self.message_user(
                        request,
                        f"Payment of {payment.amount} {invoice.currency} recorded on "
                        f"{invoice.number}.",
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(change_url)
        elif not self.can_take_payment(invoice):
            self.message_user(
                request,
                f"{invoice.number} is {invoice.display_status}: payments can only be "
                "recorded against Posted invoices with an open balance.",
                messages.ERROR,
            )
            return HttpResponseRedirect(change_url)
        else:
            form = PaymentForm(balance=invoice.balance)
        return self.render_action_form(request, invoice, form, "Record payment")


@admin.register(CreditMemo)
class CreditMemoAdmin(DocumentAdmin):
    inlines = [DocumentItemInline, CreditMadeInline]

    def get_urls(self):
        return [*self.action_urls([("apply", "apply", self.apply_view)]), *super().get_urls()]

    @staticmethod
    def can_apply(credit_memo):
        return (
            credit_memo.status == DocumentStatus.POSTED
            and credit_memo.balance > 0
            and TenantSettings.current().advanced_ar_settlement
        )

    def document_actions(self, request, document):
        if request.user.has_perm("invoices.add_creditapplication") and self.can_apply(document):
            return [("Apply to an invoice", self.action_url("apply", document))]
        return []

    def apply_view(self, request, object_id):
        credit_memo = self.document_for_action(request, object_id, "invoices.add_creditapplication")
        if credit_memo is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        change_url = self.action_url("change", credit_memo)
        if request.method == "POST":
            form = CreditMemoApplyForm(request.POST, credit_memo=credit_memo)
            if form.is_valid():
                done = form.apply(request.user)
                if done:
                    self.message_user(request, done, messages.SUCCESS)
                    return HttpResponseRedirect(change_url)
        elif not self.can_apply(credit_memo):
            self.message_user(
                request,
                f"{credit_memo.number} cannot be applied: credit is applied from a Posted "
                "credit memo with an open balance, while Advanced AR Settlement is on.",
                messages.ERROR,
            )
            return HttpResponseRedirect(change_url)
        else:
            form = CreditMemoApplyForm(credit_memo=credit_memo)
        return self.render_action_form(request, credit_memo, form, "Apply to an invoice")


@admin.register(DocumentDelivery)
class DocumentDeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "document",
        "to_address",
        "status",
        "attempts",
        "created_at",
        "sent_at",
        "resend",
    ]
    list_filter = ["status", "resend"]
    list_select_related = ["document"]
    search_fields = ["document__number", "to_address"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = [
        "document",
        "to_address",
        "status",
        "attempts",
        "resend",
        "requested_by",
        "created_at",
        "sent_at",
        "last_error",
    ]


@admin.register(DocumentItem)
class DocumentItemAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "document",
        "subscription",
        "charge_name",
        "service_start",
        "service_end",
        "quantity",
        "unit",
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
    ordering = PAYMENT_ORDER
    show_full_result_count = False


@admin.register(CreditApplication)
class CreditApplicationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["credit_memo", "invoice", "amount", "applied_at", "applied_by"]
    list_select_related = ["credit_memo", "invoice", "applied_by"]
    search_fields = ["credit_memo__number", "invoice__number"]
    raw_id_fields = ["credit_memo", "invoice", "applied_by"]
    date_hierarchy = "applied_at"
    show_full_result_count = False
