import uuid

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

from billruns import selectors
from billruns.filters import BillRunFilter
from billruns.forms import BillRunForm
from billruns.models import Action, BillRun, RunStatus
from billruns.services import (
    BillRunActionRefused,
    InvalidRunParameters,
    bill_run_cancel,
    bill_run_create,
    bill_run_delete,
    bill_run_email,
    bill_run_post,
    bill_run_retry,
)
from billruns.tables import (
    BillRunTable,
    FailureTable,
    RunDocumentsTable,
    totals_lines,
)
from customers.exports import BoundedExportMixin
from invoices.models import DocumentType

RUNNING = {RunStatus.PENDING, RunStatus.PROCESSING}
# Statuses a worker moves on by itself: the page keeps polling while in one.
IN_PROGRESS = RUNNING | {RunStatus.POST_IN_PROGRESS, RunStatus.CANCEL_IN_PROGRESS}


def runs_for_pages():
    """Runs with what the list and the run's page show of their relations."""
    return BillRun.objects.select_related(
        "created_by", "schedule", "retry_of", "account"
    ).prefetch_related("subscriptions")


class BillRunListView(PermissionRequiredMixin, BoundedExportMixin, SingleTableMixin, FilterView):
    permission_required = "billruns.view_billrun"
    template_name = "billruns/billrun_list.html"
    table_class = BillRunTable
    filterset_class = BillRunFilter
    export_name = "bill-runs"
    table_pagination = {"per_page": 25}

    def get_queryset(self):
        return runs_for_pages()

    def get_table(self, **kwargs):
        table = super().get_table(**kwargs)
        if not any(self.filterset.form.data.get(name) for name in self.filterset.filters):
            table.empty_text = "No bill runs yet."
        return table


class RunTab:
    def __init__(self, key, label, table_class, testid=""):
        self.key, self.label, self.table_class, self.testid = key, label, table_class, testid


TABS = {
    "invoices": RunTab("invoices", "Invoices", RunDocumentsTable),
    "credit-memos": RunTab("credit-memos", "Credit Memos", RunDocumentsTable),
    "failures": RunTab(
        "failures", "Failed Accounts or Subscriptions", FailureTable, testid="failures-tab"
    ),
}


class BillRunDetailView(PermissionRequiredMixin, BoundedExportMixin, SingleTableMixin, DetailView):
    permission_required = "billruns.view_billrun"
    template_name = "billruns/billrun_detail.html"
    context_object_name = "run"
    slug_field = "number"
    slug_url_kwarg = "number"
    # A run can hold 100,000 documents: page through them without counting.
    table_pagination = {"per_page": 25, "paginator_class": LazyPaginator}

    def get_queryset(self):
        return runs_for_pages().select_related("schedule__owner", "posted_by", "canceled_by")

    @property
    def tab(self):
        return TABS.get(self.request.GET.get("tab"), TABS["invoices"])

    def get_table_class(self):
        return self.tab.table_class

    def get_table(self, **kwargs):
        table = super().get_table(**kwargs)
        if self.tab.table_class is RunDocumentsTable:
            table.empty_text = f"This bill run has no {self.tab.label.lower()}."
        return table

    def get_table_data(self):
        run = self.object
        if self.tab.key == "failures":
            return run.failures.select_related("account", "subscription")
        kind = DocumentType.CREDIT_MEMO if self.tab.key == "credit-memos" else DocumentType.INVOICE
        return run.documents.filter(document_type=kind).select_related("account")

    def get_export_filename(self, export_format):
        return f"{self.object.number}-{self.tab.key}.{export_format}"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        run = self.object
        user = self.request.user
        processed, selected = selectors.run_progress(run)
        events = list(run.events.select_related("user"))
        last = events[-1] if events else None
        context.update(
            cancel_stopped=last.note
            if last is not None
            and run.status == RunStatus.COMPLETED
            and last.from_status == RunStatus.CANCEL_IN_PROGRESS
            else "",
            processed=processed,
            selected=selected,
            tabs=TABS.values(),
            active_tab=self.tab,
            totals=totals_lines(run.totals),
            events=events,
            retries=run.retries.only("number", "status"),
            in_progress=run.status in IN_PROGRESS,
            can_post=run.allows(Action.POST) and user.has_perm("billruns.post_billrun"),
            can_cancel=run.allows(Action.CANCEL) and user.has_perm("billruns.cancel_billrun"),
            can_retry=run.allows(Action.RETRY)
            and run.has_errors
            and user.has_perm("billruns.retry_billrun"),
            can_delete=run.allows(Action.DELETE) and user.has_perm("billruns.delete_billrun"),
            can_email=run.status == RunStatus.POSTED and user.has_perm("billruns.email_billrun"),
            resend_request=uuid.uuid4(),
        )
        return context


@login_required
@permission_required("billruns.add_billrun", raise_exception=True)
def billrun_create_view(request):
    form = BillRunForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            run = bill_run_create(created_by=request.user, **form.service_arguments())
        except InvalidRunParameters as invalid:
            form.add_service_errors(invalid.errors)
        else:
            messages.success(request, f"{run.number} is created and queued.")
            return redirect("billruns:detail", number=run.number)
    status = 400 if form.is_bound else 200
    return render(request, "billruns/billrun_form.html", {"form": form}, status=status)


@require_GET
@login_required
@permission_required("billruns.view_billrun", raise_exception=True)
def billrun_progress_view(request, number):
    """The progress bar, polled by htmx. Once the run has moved on, the whole
    page reloads (HX-Refresh) so its counters, actions and tabs are current."""
    run = get_object_or_404(BillRun, number=number)
    if run.status not in IN_PROGRESS:
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"
        return response
    processed, selected = selectors.run_progress(run)
    context = {"run": run, "processed": processed, "selected": selected, "in_progress": True}
    return render(request, "billruns/_progress.html", context)


def _run_action(request, number, act, done):
    """Call one bill run service; a refusal becomes an error message and
    changes nothing."""
    run = get_object_or_404(BillRun, number=number)
    try:
        result = act(run)
    except BillRunActionRefused as refusal:
        messages.error(request, str(refusal))
        return redirect("billruns:detail", number=run.number)
    messages.success(request, done(run, result))
    return redirect("billruns:detail", number=(result or run).number)


@require_POST
@login_required
@permission_required("billruns.post_billrun", raise_exception=True)
def billrun_post_view(request, number):
    return _run_action(
        request,
        number,
        lambda run: bill_run_post(run=run, user=request.user),
        lambda run, result: f"{run.number} is being posted.",
    )


@require_POST
@login_required
@permission_required("billruns.cancel_billrun", raise_exception=True)
def billrun_cancel_view(request, number):
    return _run_action(
        request,
        number,
        lambda run: bill_run_cancel(run=run, user=request.user, wait=False),
        lambda run, result: f"{run.number} is being canceled.",
    )


@require_POST
@login_required
@permission_required("billruns.retry_billrun", raise_exception=True)
def billrun_retry_view(request, number):
    return _run_action(
        request,
        number,
        lambda run: bill_run_retry(run=run, user=request.user),
        lambda run, result: f"{result.number} retries the failed accounts of {run.number}.",
    )


@require_POST
@login_required
@permission_required("billruns.delete_billrun", raise_exception=True)
def billrun_delete_view(request, number):
    run = get_object_or_404(BillRun, number=number)
    try:
        bill_run_delete(run=run, user=request.user)
    except BillRunActionRefused as refusal:
        messages.error(request, str(refusal))
        return redirect("billruns:detail", number=run.number)
    messages.success(request, f"{run.number} is deleted.")
    return redirect("billruns:list")


@require_POST
@login_required
@permission_required("billruns.email_billrun", raise_exception=True)
def billrun_email_view(request, number):
    resend = request.POST.get("resend") == "on"
    # The dialog carries a key made when the page was drawn, so submitting
    # it twice is one resend; a missing or malformed key just makes a new one.
    try:
        resend_request = uuid.UUID(request.POST.get("resend_request", ""))
    except ValueError:
        resend_request = None
    return _run_action(
        request,
        number,
        lambda run: bill_run_email(
            run=run, user=request.user, resend=resend, wait=False, resend_request=resend_request
        ),
        lambda run, result: (
            f"The documents of {run.number} are being emailed to their "
            + ("bill-to contacts, all of them again." if resend else "bill-to contacts.")
        ),
    )
