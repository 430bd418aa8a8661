import django_tables2 as tables
from django.urls import reverse

from core.tables import BaseTable, status_badge
from customers.models import Account


def account_url(record):
    return reverse("customers:account_detail", args=[record.number])


class AccountTable(BaseTable):
    number = tables.Column(linkify=account_url)
    name = tables.Column()
    bill_to_email = tables.Column(verbose_name="Bill-to contact", empty_values=())
    currency = tables.Column()
    bill_cycle_day = tables.Column(verbose_name="BCD", attrs={"td": {"class": "num"}})
    batch = tables.Column(attrs={"td": {"class": "num"}})
    status = tables.Column()

    class Meta(BaseTable.Meta):
        model = Account
        fields = (
            "number",
            "name",
            "bill_to_email",
            "currency",
            "bill_cycle_day",
            "batch",
            "status",
        )
        empty_text = "No accounts match these filters."

    def render_bill_to_email(self, value):
        if not value:
            return status_badge("Missing", "warning")
        return value

    def value_bill_to_email(self, value):
        return value or ""

    def render_batch(self, record):
        return record.batch_label

    def render_status(self, value):
        return status_badge(value)

    def value_status(self, value):
        return value
