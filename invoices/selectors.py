"""Reads of invoices' rows shared by the pages and the admin."""

from django.db.models import Exists, OuterRef, Subquery

from customers.models import UsageRecord
from invoices.models import DocumentItem, ItemKind

# A document's payments in the order a clerk reads a statement: the newest
# payment date first, and among payments of one day the last recorded first.
# Payment.Meta.ordering stays by id (the order they were recorded in).
PAYMENT_ORDER = ("-payment_date", "-id")


def document_payments(document):
    """``document``'s payments, newest payment date first, with who recorded them."""
    return document.payments.select_related("created_by").order_by(*PAYMENT_ORDER)


def usage_records():
    """Usage records with their charge, subscription and account, each with
    ``billed_on``: the number of the document whose live item of its charge
    covers its date (usage.usage_record_billed_on's rule), or None.

    One query for a page: ``billed_on`` is a subquery of the page's query,
    which the partial unique index on the items (charge, service_start)
    answers per row; PostgreSQL evaluates it for the rows of the page only,
    after the sort and the limit."""
    billed_on = (
        DocumentItem.objects.filter(
            charge_id=OuterRef("charge_id"),
            document_canceled=False,
            kind=ItemKind.CHARGE,
            fully_reversed=False,
            service_start__lte=OuterRef("date"),
            service_end__gte=OuterRef("date"),
        )
        # Not where a live adjustment has taken the date back from it.
        .exclude(
            Exists(
                DocumentItem.objects.filter(
                    adjusts=OuterRef("pk"),
                    document_canceled=False,
                    service_start__lte=OuterRef(OuterRef("date")),
                )
            )
        )
        .values("document__number")[:1]
    )
    return UsageRecord.objects.select_related("charge__subscription__account").annotate(
        billed_on=Subquery(billed_on)
    )


def document_items(document):
    """``document``'s items as its page and PDF show them: with their
    subscription and charge (its number), in one query."""
    return document.items.select_related("subscription", "charge")


def document_taxes(document):
    """``document``'s tax lines in the order of its account's tax codes, each
    with ``shown``: the amount as the document shows it, the credit memo's
    negative tax as a positive credit (as its total). One query."""
    sign = 1 if document.is_invoice else -1
    lines = list(document.taxes.order_by("position"))
    for line in lines:
        line.shown = sign * line.amount
    return lines


def documents_items(document_ids):
    """The items of the documents ``document_ids`` (a page of a run's tab),
    as {document id: [item values]} in item order: one query, only the
    columns a row shows, the charge's number through a join."""
    by_document = {document_id: [] for document_id in document_ids}
    rows = (
        # all_objects: a preview run's tab shows its Preview documents' items.
        DocumentItem.all_objects.filter(document_id__in=list(document_ids))
        .order_by("document_id", "id")
        .values(
            "document_id",
            "charge_name",
            "charge__number",
            "service_start",
            "service_end",
            "quantity",
            "unit",
            "unit_price",
            "amount",
            "rating",
            "kind",
        )
    )
    for row in rows:
        by_document[row["document_id"]].append(row)
    return by_document
