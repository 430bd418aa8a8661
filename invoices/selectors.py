"""Reads of invoices' rows shared by the pages and the admin."""

# A document's payments in the order a clerk reads a statement: the newest
# payment date first, and among payments of one day the last recorded first.
# Payment.Meta.ordering stays by id (the order they were recorded in).
PAYMENT_ORDER = ("-payment_date", "-id")


def document_payments(document):
    """``document``'s payments, newest payment date first, with who recorded them."""
    return document.payments.select_related("created_by").order_by(*PAYMENT_ORDER)


def document_items(document):
    """``document``'s items as its page and PDF show them: with their
    subscription and charge (its number), in one query."""
    return document.items.select_related("subscription", "charge")
