import django_filters
from django import forms
from django.db.models import Q

from core.forms import DATE_INPUT, FilterForm
from customers.models import Account, Charge, UsageRecord
from invoices.models import Document, DocumentStatus, DocumentType

PAID = "Paid"
# (Preview is no status of a real document: previews are never listed.)
STATUS_CHOICES = [
    *((value, label) for value, label in DocumentStatus.choices if value != DocumentStatus.PREVIEW),
    (PAID, "Paid"),
]


class DocumentFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        label="Search",
        method="filter_search",
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Invoice, account number or name"}
        ),
    )
    status = django_filters.ChoiceFilter(
        choices=STATUS_CHOICES, method="filter_status", empty_label="Any status"
    )
    document_type = django_filters.ChoiceFilter(
        choices=DocumentType.choices, label="Type", empty_label="Invoices and credit memos"
    )
    # Numbers are matched exactly, case included (INTERFACES.md, "Numbers and
    # dates"); a currency code is upper-cased, as codes have one spelling.
    account = django_filters.CharFilter(
        field_name="account__number", label="Account number", method="filter_exact"
    )
    bill_run = django_filters.CharFilter(
        field_name="bill_run__number",
        label="Bill run",
        method="filter_exact",
        widget=forms.TextInput(attrs={"placeholder": "BR-00000001"}),
    )
    currency = django_filters.CharFilter(
        field_name="currency",
        method="filter_upper_exact",
        widget=forms.TextInput(attrs={"placeholder": "USD", "size": 4, "maxlength": 3}),
    )
    date_from = django_filters.DateFilter(
        field_name="invoice_date", lookup_expr="gte", label="Date from", widget=DATE_INPUT
    )
    date_to = django_filters.DateFilter(
        field_name="invoice_date", lookup_expr="lte", label="Date to", widget=DATE_INPUT
    )

    class Meta:
        model = Document
        fields = ()
        form = FilterForm

    def filter_search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        # Exact numbers use the unique indexes; a name search looks through the
        # accounts (far fewer rows than documents) first.
        accounts = Account.objects.filter(Q(number=value) | Q(name__icontains=value))
        return queryset.filter(Q(number=value) | Q(account__in=accounts.values("id")))

    def filter_exact(self, queryset, name, value):
        return queryset.filter(**{name: value.strip()})

    def filter_upper_exact(self, queryset, name, value):
        return queryset.filter(**{name: value.strip().upper()})

    def filter_status(self, queryset, name, value):
        if value == PAID:
            return queryset.filter(
                document_type=DocumentType.INVOICE,
                status=DocumentStatus.POSTED,
                balance=0,
                amount__gt=0,
            )
        return queryset.filter(status=value)


# An account with at most this many records has them read by id (see
# ``UsageRecordFilter.filter_account``).
ACCOUNT_RECORDS_LISTED = 2000


class UsageRecordFilter(django_filters.FilterSet):
    """The usage page's filter. Numbers are matched exactly, case included."""

    account = django_filters.CharFilter(
        field_name="charge__subscription__account__number",
        label="Account number",
        method="filter_account",
        widget=forms.TextInput(attrs={"placeholder": "A00000001"}),
    )
    charge = django_filters.CharFilter(
        field_name="charge__number",
        label="Charge number",
        method="filter_exact",
        widget=forms.TextInput(attrs={"placeholder": "C00000001"}),
    )
    date_from = django_filters.DateFilter(
        field_name="date", lookup_expr="gte", label="Date from", widget=DATE_INPUT
    )
    date_to = django_filters.DateFilter(
        field_name="date", lookup_expr="lte", label="Date to", widget=DATE_INPUT
    )

    class Meta:
        model = UsageRecord
        fields = ()
        form = FilterForm

    def filter_exact(self, queryset, name, value):
        return queryset.filter(**{name: value.strip()})

    def filter_account(self, queryset, name, value):
        """The account's charge ids first, then the records of those ids: a
        join from the records to their account is a scan of all the records
        on PostgreSQL (2 s at 10,000,000 records, docs/benchmarks.md). The
        records' BRIN serves a list of charge ids, but sorted by id (the
        page's default) the planner prefers to walk the primary key, reading
        most of it for an account's few records: so when the account has at
        most ACCOUNT_RECORDS_LISTED records, their ids are read first (a
        bitmap scan of the BRIN) and the page reads those ids."""
        charge_ids = list(
            Charge.objects.filter(subscription__account__number=value.strip()).values_list(
                "id", flat=True
            )
        )
        records = queryset.filter(charge_id__in=charge_ids)
        few = list(
            UsageRecord.objects.filter(charge_id__in=charge_ids).values_list("pk", flat=True)[
                : ACCOUNT_RECORDS_LISTED + 1
            ]
        )
        if len(few) <= ACCOUNT_RECORDS_LISTED:
            return records.filter(pk__in=few)
        return records
