from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django.views.generic import DetailView, TemplateView
from django_filters.views import FilterView
from django_tables2 import SingleTableMixin

from core.exports import BoundedExportMixin
from core.upload_views import UploadDetailView, UploadPageMixin, UploadStatusMixin
from customers.account_uploads import account_upload_create
from customers.filters import AccountFilter
from customers.forms import BillToContactForm
from customers.models import Account, AccountUpload, Charge, ChargePrice, Subscription
from customers.services import BillToContactRefused, account_bill_to_contact_change
from customers.tables import AccountTable

# The account page shows this many of its newest documents and failures, with
# a link to the full, filtered list.
RECENT_ROWS = 20


class AccountListView(PermissionRequiredMixin, BoundedExportMixin, SingleTableMixin, FilterView):
    permission_required = "customers.view_account"
    template_name = "customers/account_list.html"
    model = Account
    table_class = AccountTable
    filterset_class = AccountFilter
    export_name = "accounts"
    table_pagination = {"per_page": 25}


def charges_shown():
    """Charges as their tables show them (customers/_charges_table.html): a
    usage charge's pricing with its tiers, prefetched with them."""
    return Charge.objects.select_related("pricing").order_by("id")


class AccountDetailView(PermissionRequiredMixin, DetailView):
    permission_required = "customers.view_account"
    template_name = "customers/account_detail.html"
    context_object_name = "account"
    slug_field = "number"
    slug_url_kwarg = "number"
    model = Account

    def get_context_data(self, **kwargs):
        # customers sits below invoices and billruns, so the account page reads
        # their rows through the reverse relations rather than importing them.
        context = super().get_context_data(**kwargs)
        account = self.object
        subscriptions = account.subscriptions.prefetch_related(
            Prefetch("charges", queryset=charges_shown()), "charges__pricing__tiers"
        )
        documents = account.documents.select_related("bill_run").order_by("-id")[:RECENT_ROWS]
        # (a preview's failures are no run's: left out, as its documents are)
        failures = (
            account.bill_run_failures.filter(bill_run__preview=False)
            .select_related("bill_run", "subscription")
            .order_by("-id")[:RECENT_ROWS]
        )
        contact_form = kwargs.get("contact_form")
        if contact_form is None and self.request.user.has_perm("customers.change_account"):
            contact_form = BillToContactForm(initial={"bill_to_email": account.bill_to_email})
        context.update(
            subscriptions=subscriptions,
            tax_codes=account.tax_codes.select_related("tax_rate").order_by("position"),
            documents=documents,
            failures=failures,
            contact_form=contact_form,
        )
        return context


@require_POST
@login_required
@permission_required("customers.change_account", raise_exception=True)
def account_bill_to_contact_view(request, number):
    account = get_object_or_404(Account, number=number)
    form = BillToContactForm(request.POST)
    if form.is_valid():
        try:
            account = account_bill_to_contact_change(
                account_id=account.pk, email=form.cleaned_data["bill_to_email"]
            )
        except BillToContactRefused as refusal:
            form.add_error("bill_to_email", str(refusal))
        else:
            messages.success(
                request,
                f"The bill-to contact of {account.number} is now {account.bill_to_email}. "
                "The next bill run (or a retry of a run that failed it) bills the account.",
            )
            return redirect("customers:account_detail", number=account.number)
    view = AccountDetailView(request=request, kwargs={"number": number}, object=account)
    context = view.get_context_data(object=account, contact_form=form)
    return render(request, view.template_name, context, status=400)


class AccountImportView(PermissionRequiredMixin, UploadPageMixin, TemplateView):
    """The newest uploaded import_accounts files; a POST uploads one (a
    clerk), which the task queue imports."""

    permission_required = "customers.view_accountupload"
    template_name = "customers/account_import.html"
    upload_model = AccountUpload
    upload_permission = "customers.add_accountupload"
    upload_label = "Accounts file"
    upload_help = "JSON in UTF-8, as import_accounts reads it."
    upload_accept = ".json,application/json"

    def store(self, *, file, user):
        return account_upload_create(file=file, user=user)


class AccountUploadDetailView(UploadDetailView):
    permission_required = "customers.view_accountupload"
    model = AccountUpload
    template_name = "customers/account_upload_detail.html"
    status_url_name = "customers:account_upload_status"
    back_url_name = "customers:account_import"
    back_label = "Import accounts"
    eyebrow = "Accounts file"


class AccountUploadStatusView(UploadStatusMixin, AccountUploadDetailView):
    pass


class SubscriptionDetailView(PermissionRequiredMixin, DetailView):
    """A subscription, its charges with what each has billed and its price
    segments, and its changes. The forms that change it preview with the
    bill run engine, so they are billruns' (billruns/change_views.py); this
    page links to them through the context processor
    ``billruns.context_processors.subscription_change_links``."""

    permission_required = "customers.view_account"
    template_name = "customers/subscription_detail.html"
    context_object_name = "subscription"
    slug_field = "number"
    slug_url_kwarg = "number"

    def get_queryset(self):
        return Subscription.objects.select_related("account")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        subscription = self.object
        charges = list(
            charges_shown()
            .filter(subscription=subscription)
            .prefetch_related(
                "pricing__tiers",
                Prefetch("items", queryset=billed_items()),
                Prefetch(
                    "prices",
                    queryset=ChargePrice.objects.select_related("pricing").order_by(
                        "effective_date", "id"
                    ),
                ),
                "prices__pricing__tiers",
            )
        )
        changes = subscription.changes.select_related("charge", "made_by").order_by("-id")
        context.update(charges=charges, changes=changes)
        return context


def billed_items():
    """The items of documents not canceled, with their document, in service
    order: what a charge has billed so far.

    Items are invoices' rows, and customers sits below invoices: the model is
    reached through the charges' reverse relation rather than imported (as
    the account page reads its documents)."""
    items = Charge._meta.get_field("items").related_model
    return (
        items.objects.filter(document_canceled=False)
        .select_related("document")
        .order_by("service_start", "id")
    )
