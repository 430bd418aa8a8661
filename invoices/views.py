from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from django.views.generic import DetailView
from django_filters.views import FilterView
from django_tables2 import SingleTableMixin
from django_tables2.paginators import LazyPaginator

from core.exports import BoundedExportMixin
from core.upload_views import UploadDetailView, UploadPageMixin, UploadStatusMixin
from invoices.filters import DocumentFilter, UsageRecordFilter
from invoices.forms import CreditMemoApplyForm, PaymentForm
from invoices.models import Document, DocumentStatus, TenantSettings, UsageUpload
from invoices.pdf import PdfUnavailable, document_pdf, document_pdf_filename
from invoices.selectors import document_items, document_payments, document_taxes, usage_records
from invoices.services import (
    DocumentActionRefused,
    document_post,
    document_post_refusal,
    payment_record,
)
from invoices.tables import DocumentTable, PaymentTable, UsageRecordTable
from invoices.usage_uploads import usage_upload_create


class DocumentListView(PermissionRequiredMixin, BoundedExportMixin, SingleTableMixin, FilterView):
    permission_required = "invoices.view_document"
    template_name = "invoices/document_list.html"
    table_class = DocumentTable
    filterset_class = DocumentFilter
    export_name = "invoices"
    # Counting a million documents for "page 1 of N" costs more than the page
    # itself; the lazy paginator only looks one page ahead.
    table_pagination = {"per_page": 25, "paginator_class": LazyPaginator}

    def get_queryset(self):
        return Document.objects.select_related("account", "bill_run")


class DocumentDetailView(PermissionRequiredMixin, DetailView):
    permission_required = "invoices.view_document"
    template_name = "invoices/document_detail.html"
    context_object_name = "document"
    slug_field = "number"
    slug_url_kwarg = "number"

    def get_queryset(self):
        return Document.objects.select_related("account", "bill_run", "posted_by", "canceled_by")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        document = self.object
        user = self.request.user
        items = document_items(document)
        payments = document_payments(document)
        can_pay = (
            document.is_invoice
            and document.status == DocumentStatus.POSTED
            and document.balance > 0
            and user.has_perm("invoices.add_payment")
        )
        may_apply = (
            not document.is_invoice
            and document.status == DocumentStatus.POSTED
            and document.balance > 0
            and user.has_perm("invoices.add_creditapplication")
        )
        advanced_ar = TenantSettings.current().advanced_ar_settlement
        apply_form = kwargs.get("apply_form")
        if apply_form is None and may_apply and advanced_ar:
            apply_form = CreditMemoApplyForm(credit_memo=document)
        context.update(
            apply_form=apply_form,
            apply_needs_advanced_ar=may_apply and not advanced_ar,
            items=items,
            taxes=document_taxes(document),
            payments_table=PaymentTable(payments),
            can_post=document.status == DocumentStatus.DRAFT
            and user.has_perm("invoices.post_document")
            and not document_post_refusal(document),
            payment_form=kwargs.get("payment_form")
            or (PaymentForm(balance=document.balance) if can_pay else None),
            credits_applied=document.credits_applied.select_related("credit_memo", "applied_by"),
            applications_made=document.applications_made.select_related("invoice", "applied_by"),
            deliveries=document.deliveries.select_related("requested_by"),
        )
        return context


@require_POST
@login_required
@permission_required("invoices.post_document", raise_exception=True)
def document_post_view(request, number):
    document = get_object_or_404(Document, number=number)
    try:
        document_post(document_id=document.id, user=request.user)
    except DocumentActionRefused as refusal:
        messages.error(request, str(refusal))
    else:
        messages.success(request, f"{document.number} is posted.")
    return redirect("invoices:detail", number=document.number)


@require_POST
@login_required
@permission_required("invoices.add_payment", raise_exception=True)
def payment_create_view(request, number):
    document = get_object_or_404(Document, number=number)
    form = PaymentForm(request.POST)
    if not form.is_valid():
        view = DocumentDetailView(request=request, kwargs={"number": number}, object=document)
        context = view.get_context_data(object=document, payment_form=form)
        return render(request, view.template_name, context, status=400)
    try:
        payment = payment_record(document_id=document.id, user=request.user, **form.cleaned_data)
    except DocumentActionRefused as refusal:
        messages.error(request, str(refusal))
    else:
        messages.success(
            request,
            f"Payment of {payment.amount} {document.currency} recorded on {document.number}.",
        )
    return redirect("invoices:detail", number=document.number)


@require_POST
@login_required
@permission_required("invoices.add_creditapplication", raise_exception=True)
def credit_application_create_view(request, number):
    """Apply part of a Posted credit memo to an open Posted invoice of its
    account and currency (``credit_memo_apply``: both rows locked in id
    order, balances checked under the locks, once per form)."""
    credit_memo = get_object_or_404(Document, number=number)
    form = CreditMemoApplyForm(request.POST, credit_memo=credit_memo)
    if form.is_valid():
        done = form.apply(request.user)
        if done:
            messages.success(request, done)
            return redirect("invoices:detail", number=credit_memo.number)
    view = DocumentDetailView(request=request, kwargs={"number": number}, object=credit_memo)
    context = view.get_context_data(object=credit_memo, apply_form=form)
    return render(request, view.template_name, context, status=400)


@require_GET
@login_required
@permission_required("invoices.view_document", raise_exception=True)
def document_pdf_view(request, number):
    document = get_object_or_404(
        Document.objects.select_related("account", "bill_run", "posted_by"), number=number
    )
    try:
        pdf = document_pdf(document=document)
    except PdfUnavailable as unavailable:
        return HttpResponse(str(unavailable), status=503, content_type="text/plain; charset=utf-8")
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{document_pdf_filename(document)}"'
    return response


class UsageRecordListView(
    PermissionRequiredMixin, UploadPageMixin, BoundedExportMixin, SingleTableMixin, FilterView
):
    """Usage records, filtered and sorted; a POST uploads an import_usage
    file (a clerk), which the task queue imports."""

    permission_required = "customers.view_usagerecord"
    template_name = "invoices/usage_list.html"
    table_class = UsageRecordTable
    filterset_class = UsageRecordFilter
    export_name = "usage"
    # No count of a million records for "page 1 of N" (see DocumentListView).
    table_pagination = {"per_page": 25, "paginator_class": LazyPaginator}
    upload_model = UsageUpload
    upload_permission = "invoices.add_usageupload"
    upload_label = "Usage file"
    upload_help = "CSV in UTF-8 with the header id,charge,date,quantity, as import_usage reads it."
    upload_accept = ".csv,text/csv"

    def get_queryset(self):
        return usage_records()

    def store(self, *, file, user):
        return usage_upload_create(file=file, user=user)


class UsageUploadDetailView(UploadDetailView):
    permission_required = "invoices.view_usageupload"
    model = UsageUpload
    template_name = "invoices/usage_upload_detail.html"
    status_url_name = "usage:upload_status"
    back_url_name = "usage:list"
    back_label = "Usage records"
    eyebrow = "Usage file"


class UsageUploadStatusView(UploadStatusMixin, UsageUploadDetailView):
    pass
