import django_filters
from django import forms
from django.db.models import Q

from core.forms import FilterForm
from customers.models import Account, Status


class AccountFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        label="Search",
        method="filter_search",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Account number or name"}),
    )
    status = django_filters.ChoiceFilter(choices=Status.choices, empty_label="Any status")
    currency = django_filters.CharFilter(
        method="filter_currency", widget=forms.TextInput(attrs={"placeholder": "USD", "size": 4})
    )
    batch = django_filters.NumberFilter(widget=forms.NumberInput(attrs={"min": 1, "max": 50}))
    bill_cycle_day = django_filters.NumberFilter(
        label="Bill cycle day", widget=forms.NumberInput(attrs={"min": 1, "max": 31})
    )
    missing_contact = django_filters.BooleanFilter(
        label="Bill-to contact",
        field_name="bill_to_email",
        method="filter_missing_contact",
        widget=forms.Select(choices=[("", "Any"), ("true", "Missing"), ("false", "Present")]),
    )

    class Meta:
        model = Account
        fields = ()
        form = FilterForm

    def filter_search(self, queryset, name, value):
        # A number is matched exactly, case included (INTERFACES.md, "Numbers
        # and dates"); a name is searched for, in any case.
        value = value.strip()
        return queryset.filter(Q(number=value) | Q(name__icontains=value)) if value else queryset

    def filter_currency(self, queryset, name, value):
        return queryset.filter(currency=value.strip().upper())

    def filter_missing_contact(self, queryset, name, value):
        return queryset.filter(bill_to_email="") if value else queryset.exclude(bill_to_email="")
