from django.contrib.auth.mixins import PermissionRequiredMixin
from django.db.models import Prefetch
from django.views.generic import DetailView
from django_filters.views import FilterView
from django_tables2 import SingleTableMixin

from customers.exports import BoundedExportMixin
from customers.filters import AccountFilter
from customers.models import Account, Charge
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
            Prefetch("charges", queryset=Charge.objects.order_by("id"))
        )
        documents = account.documents.select_related("bill_run").order_by("-id")[:RECENT_ROWS]
        failures = account.bill_run_failures.select_related("bill_run", "subscription").order_by(
            "-id"
        )[:RECENT_ROWS]
        context.update(subscriptions=subscriptions, documents=documents, failures=failures)
        return context
