import django_filters
from django import forms
from django.contrib.auth import get_user_model

from billruns.models import BillRun, RunStatus
from core.forms import DATE_INPUT, FetchedModelChoiceField, FilterForm

ERRORS_CHOICES = (("yes", "With errors"), ("no", "Without errors"))


def run_creators(request):
    # Only users who created a run: a short list even when the site has many users.
    return (
        get_user_model()
        .objects.filter(id__in=BillRun.objects.values("created_by_id"))
        .only("id", "username")
        .order_by("username")
    )


class CreatorFilter(django_filters.ModelChoiceFilter):
    field_class = FetchedModelChoiceField


class BillRunFilter(django_filters.FilterSet):
    number = django_filters.CharFilter(
        label="Run number",
        method="filter_number",
        widget=forms.TextInput(attrs={"placeholder": "BR-00000001", "type": "search"}),
    )
    status = django_filters.ChoiceFilter(choices=RunStatus.choices, empty_label="Any status")
    has_errors = django_filters.ChoiceFilter(
        label="Errors", choices=ERRORS_CHOICES, method="filter_has_errors", empty_label="Any"
    )
    target_from = django_filters.DateFilter(
        field_name="target_date", lookup_expr="gte", label="Target from", widget=DATE_INPUT
    )
    target_to = django_filters.DateFilter(
        field_name="target_date", lookup_expr="lte", label="Target to", widget=DATE_INPUT
    )
    created_from = django_filters.DateFilter(
        field_name="created_at", lookup_expr="date__gte", label="Created from", widget=DATE_INPUT
    )
    created_to = django_filters.DateFilter(
        field_name="created_at", lookup_expr="date__lte", label="Created to", widget=DATE_INPUT
    )
    created_by = CreatorFilter(queryset=run_creators, label="Created by", empty_label="Anyone")

    class Meta:
        model = BillRun
        fields = ()
        form = FilterForm

    def filter_number(self, queryset, name, value):
        # Exactly as written, case included (INTERFACES.md, "Numbers and
        # dates"); plain digits are a shorthand for BR- and eight digits.
        value = value.strip()
        if value.isascii() and value.isdigit():
            value = f"BR-{int(value):08d}"
        return queryset.filter(number=value)

    def filter_has_errors(self, queryset, name, value):
        return queryset.filter(has_errors=value == "yes")
