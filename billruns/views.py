import datetime
import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.functional import cached_property
from django.views.decorators.http import require_GET, require_POST
from django.views.generic import DetailView
from django_filters.views import FilterView
from django_tables2 import SingleTableMixin
from django_tables2.paginators import LazyPaginator

from billruns import review, selectors
from billruns.filters import BillRunFilter
from billruns.forms import BillRunForm
from billruns.models import (
    PREVIEW_KEEP_DAYS,
    Action,
    BillRun,
    ReviewFlag,
    ReviewLine,
    RunStatus,
)
from billruns.services import (
    BillRunActionRefused,
    InvalidRunParameters,
    bill_run_cancel,
    bill_run_create,
    bill_run_create_from_preview,
    bill_run_delete,
    bill_run_email,
    bill_run_post,
    bill_run_retry,
)
from billruns.tables import (
    BillRunTable,
    FailureTable,
    PageRows,
    ReviewTable,
    RunDocumentsTable,
    totals_with_tax,
)
from core.exports import BoundedExportMixin
from core.pagecache import CachedPageMixin, placeholder
from invoices.models import Document, DocumentStatus, DocumentType

RUNNING = {RunStatus.PENDING, RunStatus.PROCESSING}
# Statuses a worker moves on by itself: the page keeps polling while in one.
IN_PROGRESS = RUNNING | {RunStatus.POST_IN_PROGRESS, RunStatus.CANCEL_IN_PROGRESS}


def runs_for_pages():
    """Runs with what the list and the run's page show of their relations."""
    return BillRun.objects.select_related(
        "created_by", "schedule", "retry_of", "account"
    ).prefetch_related("subscriptions")


class BillRunListView(
    PermissionRequiredMixin, CachedPageMixin, BoundedExportMixin, SingleTableMixin, FilterView
):
    permission_required = "billruns.view_billrun"
    template_name = "billruns/billrun_list.html"
    # Kept rendered until anything changes (core.pagecache).
    page_cache_name = "billruns:list"
    content_template_name = "billruns/_list_content.html"
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

    def page_title(self, context):
        return "Bill Runs"


class RunTab:
    def __init__(self, key, label, table_class, testid=""):
        self.key, self.label, self.table_class, self.testid = key, label, table_class, testid


TABS = {
    "invoices": RunTab("invoices", "Invoices", RunDocumentsTable),
    "credit-memos": RunTab("credit-memos", "Credit Memos", RunDocumentsTable),
    "failures": RunTab(
        "failures", "Failed Accounts or Subscriptions", FailureTable, testid="failures-tab"
    ),
    "review": RunTab("review", "Review", ReviewTable, testid="review-tab"),
}


def failures_sentence(accounts: int, by_subscription: int) -> str:
    """The run page's banner: how many accounts failed, and how many of those
    because one of their subscriptions failed (BILLING_RULES.md, Failures:
    either way the whole account is not billed)."""
    text = (
        f"{accounts} account{'s' if accounts != 1 else ''} failed to generate invoices "
        f"and {'was' if accounts == 1 else 'were'} not billed"
    )
    if by_subscription and by_subscription == accounts:
        reason = (
            "because a subscription failed"
            if accounts == 1
            else "each because a subscription failed"
        )
        return f"{text}, {reason}."
    if by_subscription:
        return f"{text}, {by_subscription} of them because a subscription failed."
    return f"{text}."


def email_requested_key(number) -> str:
    return f"billrun-email-requested-{number}"


class BillRunDetailView(
    PermissionRequiredMixin, CachedPageMixin, BoundedExportMixin, SingleTableMixin, DetailView
):
    """The run's page. Everything on it that changes while a worker moves the
    run on (status, actions, banners, progress, counters, details, history,
    emails, tabs) is one region, billruns/_live.html, that the page polls as
    a whole (BillRunLiveView): its parts never disagree."""

    permission_required = "billruns.view_billrun"
    template_name = "billruns/billrun_detail.html"
    context_object_name = "run"
    # Kept rendered while it does not poll, until anything changes
    # (core.pagecache); the dialogs' request keys are fresh on every serve.
    page_cache_name = "billruns:detail"
    content_template_name = "billruns/_detail_content.html"
    breadcrumbs_template_name = "billruns/_detail_breadcrumbs.html"
    page_placeholders = ("resend_request", "create_request")
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
        if self.tab.key == "review" and self.review.review is not None:
            table.review_page = self.review_page
        return table

    @cached_property
    def today(self):
        return timezone.localdate()

    @cached_property
    def review(self):
        """The Review tab's state (billruns.review), made once per request."""
        return review.review_state(self.object, self.request.GET.get("against", "").strip())

    @property
    def review_flag(self):
        flag = self.request.GET.get("flag", "")
        return flag if flag in ReviewFlag.values else ""

    def get_table_kwargs(self):
        kwargs = super().get_table_kwargs()
        if self.tab.key == "review":
            kwargs["today"] = self.today
        return kwargs

    @cached_property
    def review_page(self):
        """The Review tab's page (billruns.review.review_page): one query."""
        return review.review_page(
            self.review.review,
            sort=self.request.GET.get("sort", ""),
            flag=self.review_flag,
            cursor=self.request.GET.get("cursor", ""),
            today=self.today,
        )

    def get_table_pagination(self, table):
        if self.tab.key == "review":
            return False  # paged by the review's places (review_page), not by OFFSET
        return super().get_table_pagination(table)

    def get_table_data(self):
        run = self.object
        if self.tab.key == "review":
            if self.review.review is None:
                return ReviewLine.objects.none()
            if self.export_trigger_param in self.request.GET:
                # Every line of the filter, sorted by the column's place.
                return review.lines_flagged(self.review.review, self.review_flag, today=self.today)
            return PageRows(self.review_page.rows)
        if self.tab.key == "failures":
            return run.failures.select_related("account", "subscription")
        kind = DocumentType.CREDIT_MEMO if self.tab.key == "credit-memos" else DocumentType.INVOICE
        # (all_objects: a preview's tabs list its Preview documents)
        return Document.all_objects.filter(bill_run=run, document_type=kind).select_related(
            "account"
        )

    def get_export_filename(self, export_format):
        return f"{self.object.number}-{self.tab.key}.{export_format}"

    def page_title(self, context):
        return self.object.number

    def page_key_parts(self):
        # The emails this user asked for, which the page follows (the session's).
        return (self.request.session.get(email_requested_key(self.kwargs["number"]), ""),)

    def page_cacheable(self, context):
        return not context["polling"]

    def request_key(self, name):
        """A dialog's key against submitting it twice: fresh on every serve."""
        return placeholder(name) if self.page_cache_name else uuid.uuid4()

    def email_requested_at(self):
        """When this user last asked to email the run's documents (kept in
        the session by billrun_email_view), so the page follows the emails
        from the click on, before the first one is recorded."""
        value = self.request.session.get(email_requested_key(self.object.number))
        try:
            return datetime.datetime.fromisoformat(value) if value else None
        except ValueError:
            return None

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        run = self.object
        user = self.request.user
        now = timezone.now()
        in_progress = run.status in IN_PROGRESS
        if in_progress:  # the progress bar counts every document
            counts = selectors.run_document_counts(run)
            progress = selectors.run_progress_bar(run, counts)
            has_posted = counts.count(status=DocumentStatus.POSTED) > 0
        else:
            counts = selectors.run_settled_counts(run)
            progress, has_posted = None, counts.has_posted
        events = list(run.events.select_related("user"))
        last = events[-1] if events else None
        may_post = run.allows(Action.POST) and user.has_perm("billruns.post_billrun")
        post_preview = (
            selectors.run_post_preview(run, today=timezone.localdate()) if may_post else None
        )
        # A preview is deleted rather than canceled (canceling one deletes it).
        may_cancel = (
            not run.preview
            and run.allows(Action.CANCEL)
            and user.has_perm("billruns.cancel_billrun")
        )
        emails = None
        requested_at = None
        if run.status == RunStatus.POSTED:
            requested_at = self.email_requested_at()
            emails = selectors.run_email_progress(run, requested=requested_at is not None)
        emails_in_progress = bool(emails and emails.in_progress(now=now, requested_at=requested_at))
        context.update(
            cancel_stopped=last.note
            if last is not None
            and run.status == RunStatus.COMPLETED
            and last.from_status == RunStatus.CANCEL_IN_PROGRESS
            else "",
            progress=progress,
            invoices_canceled=counts.canceled(DocumentType.INVOICE),
            credit_memos_canceled=counts.canceled(DocumentType.CREDIT_MEMO),
            failures_sentence=failures_sentence(
                run.accounts_failed, selectors.run_accounts_failed_by_subscription(run)
            )
            if run.has_errors
            else "",
            tabs=TABS.values(),
            active_tab=self.tab,
            totals=totals_with_tax(run.totals, run.tax_totals),
            events=events,
            retries=run.retries.only("number", "status"),
            in_progress=in_progress,
            polling=in_progress or emails_in_progress,
            poll_query=self.request.GET.urlencode(),
            emails=emails,
            emails_in_progress=emails_in_progress,
            can_post=may_post,
            post_preview=post_preview,
            post_review=review.review_summary(run, today=self.today) if may_post else None,
            post_is_primary=bool(post_preview and post_preview.documents),
            can_cancel=may_cancel and not has_posted,
            cancel_refused=(
                "It has posted documents, and a run with posted documents cannot be canceled."
                if may_cancel and has_posted
                else ""
            ),
            can_retry=run.allows(Action.RETRY)
            and run.has_errors
            and user.has_perm("billruns.retry_billrun"),
            can_delete=run.allows(Action.DELETE) and user.has_perm("billruns.delete_billrun"),
            can_email=run.status == RunStatus.POSTED and user.has_perm("billruns.email_billrun"),
            resend_request=self.request_key("resend_request"),
            can_create_run=run.preview and user.has_perm("billruns.add_billrun"),
            preview_keep_days=PREVIEW_KEEP_DAYS,
            create_request=self.request_key("create_request"),
        )
        if self.tab.key == "review":
            context.update(self.review_context())
        return context

    def review_context(self):
        state = self.review
        if state.review is None:
            return {"review": state}
        counts = review.flag_counts(state.review, today=self.today)
        return {
            "review": state,
            "review_page": self.review_page,
            "review_flags": [
                (flag.value, flag.label, counts.get(flag.value, 0)) for flag in ReviewFlag
            ],
            "review_flag": self.review_flag,
            "review_currencies": review.currency_lines(self.object, state.against),
            "review_choices": review.earlier_runs(self.object).only(
                "number", "target_date", "status"
            )[: review.PICKER_SIZE],
            "review_threshold": state.review.threshold_percent,
        }


class BillRunLiveView(BillRunDetailView):
    """The run page's live region (billruns/_live.html), polled by htmx every
    2 s while a worker moves the run on or its emails go out, with the page's
    own query (tab, sort, page). The page says which status it was drawn in
    (header X-Run-Drawn): once the run has moved on to a settled status the
    whole page reloads (HX-Refresh), and the new page polls no more."""

    template_name = "billruns/_live.html"
    page_cache_name = None  # live: rendered on every poll

    def get(self, request, *args, **kwargs):
        self.object = self.get_object()
        drawn = request.headers.get("X-Run-Drawn", "")
        if self.object.status not in IN_PROGRESS and drawn != self.object.status:
            response = HttpResponse(status=204)
            response["HX-Refresh"] = "true"
            return response
        return super().get(request, *args, **kwargs)


billrun_progress_view = require_GET(BillRunLiveView.as_view())


@login_required
@permission_required("billruns.add_billrun", raise_exception=True)
def billrun_create_view(request):
    form = BillRunForm(request.POST or None)
    # The form's second button, Preview: the same parameters, as a preview.
    preview = request.method == "POST" and "preview" in request.POST
    if request.method == "POST" and form.is_valid():
        arguments = form.service_arguments()
        if preview:
            # A key of its own: the form's Back then Create makes the real run.
            arguments["request_key"] = f"preview-{arguments['request_key']}"
        try:
            run = bill_run_create(created_by=request.user, preview=preview, **arguments)
        except InvalidRunParameters as invalid:
            form.add_service_errors(invalid.errors)
        else:
            if preview:
                messages.success(request, f"{run.number} previews this run; nothing is consumed.")
            else:
                messages.success(request, f"{run.number} is created and queued.")
            return redirect("billruns:detail", number=run.number)
    status = 400 if form.is_bound else 200
    return render(request, "billruns/billrun_form.html", {"form": form}, status=status)


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
    run = get_object_or_404(BillRun, number=number)
    if run.preview:
        # Canceling a preview deletes it: back to the list.
        try:
            bill_run_cancel(run=run, user=request.user, wait=False)
        except BillRunActionRefused as refusal:
            messages.error(request, str(refusal))
            return redirect("billruns:detail", number=run.number)
        messages.success(request, f"{run.number} is canceled and deleted (a preview).")
        return redirect("billruns:list")
    return _run_action(
        request,
        number,
        lambda run: bill_run_cancel(run=run, user=request.user, wait=False),
        lambda run, result: f"{run.number} is being canceled.",
    )


@require_POST
@login_required
@permission_required("billruns.add_billrun", raise_exception=True)
def billrun_create_from_preview_view(request, number):
    """A preview's *Create this run*: the real run with its parameters."""
    key = request.POST.get("request_key", "").strip()[:36] or None
    return _run_action(
        request,
        number,
        lambda run: bill_run_create_from_preview(
            preview=run, created_by=request.user, request_key=key and f"from-preview-{key}"
        ),
        lambda run, result: f"{result.number} is created with the parameters of {run.number}.",
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
    # The run's page follows the emails from now on (BillRunDetailView.email_requested_at).
    request.session[email_requested_key(number)] = timezone.now().isoformat()
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
