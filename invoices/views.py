from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from django.views.generic import DetailView
from django_filters.views import FilterView
from django_tables2 import SingleTableMixin
from django_tables2.paginators import LazyPaginator

from core.exports import BoundedExportMixin
from invoices.filters import DocumentFilter, UsageRecordFilter
from invoices.forms import PaymentForm, UsageUploadForm
from invoices.models import Document, DocumentStatus
from invoices.pdf import PdfUnavailable, document_pdf, document_pdf_filename
from invoices.selectors import document_payments, usage_records, usage_uploads
from invoices.services import (
    DocumentActionRefused,
    document_post,
    document_post_refusal,
    payment_record,
)
from invoices.tables import DocumentTable, PaymentTable, UsageRecordTable, UsageUploadTable
from invoices.usage_uploads import UsageUploadRefused, usage_upload_create

# The usage page lists this many of the newest uploads.
RECENT_UPLOADS = 5


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
        items = document.items.select_related("subscription")
        payments = document_payments(document)
        can_pay = (
            document.is_invoice
            and document.status == DocumentStatus.POSTED
            and document.balance > 0
            and user.has_perm("invoices.add_payment")
        )
        context.update(
            items=items,
            payments_table=PaymentTable(payments),
            can_post=document.status == DocumentStatus.DRAFT
            and user.has_perm("invoices.post_document")
            and not document_post_refusal(document),
            payment_form=kwargs.get("payment_form")
            or (PaymentForm(balance=document.balance) if can_pay else None),
            credits_applied=document.credits_applied.select_related("credit_memo"),
            applications_made=document.applications_made.select_related("invoice"),
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
    PermissionRequiredMixin, BoundedExportMixin, SingleTableMixin, FilterView
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
    upload_form = None

    def get_queryset(self):
        return usage_records()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        can_upload = self.request.user.has_perm("invoices.add_usageupload")
        context.update(
            upload_form=(self.upload_form or UsageUploadForm()) if can_upload else None,
            uploads_table=UsageUploadTable(list(usage_uploads()[:RECENT_UPLOADS])),
        )
        return context

    def post(self, request, *args, **kwargs):
        if not request.user.has_perm("invoices.add_usageupload"):
            raise PermissionDenied
        form = UsageUploadForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                upload = usage_upload_create(file=form.cleaned_data["file"], user=request.user)
            except UsageUploadRefused as refusal:
                form.add_error("file", str(refusal))
            else:
                messages.success(request, f"{upload.file_name} is uploaded and queued for import.")
                return redirect(upload)
        self.upload_form = form
        response = self.get(request, *args, **kwargs)
        response.status_code = 400
        return response


class UsageUploadDetailView(PermissionRequiredMixin, DetailView):
    permission_required = "invoices.view_usageupload"
    template_name = "invoices/usage_upload_detail.html"
    context_object_name = "upload"

    def get_queryset(self):
        return usage_uploads()


class UsageUploadLiveView(UsageUploadDetailView):
    """The upload page's status (invoices/_usage_upload_live.html), polled by
    htmx every 2 s until the import ends; the part drawn then polls no more."""

    template_name = "invoices/_usage_upload_live.html"


usage_upload_status_view = require_GET(UsageUploadLiveView.as_view())
