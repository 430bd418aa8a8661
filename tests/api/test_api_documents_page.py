"""The API's documents pages (billruns.selectors.documents_page_as_dicts;
a run's page on PostgreSQL: run_documents_page_json, one statement writing
the page's JSON text, sent unparsed) are exactly what ``documents_as_dicts``
(``billrun show --json --documents``) shows, and a run's page is byte for
byte what DRF's JSONRenderer writes of it."""

import datetime
import json
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.renderers import JSONRenderer

from api.keys import api_key_revoke
from api.pagination import make_cursor
from billruns import services
from billruns.selectors import PAGE_STATEMENT, documents_as_dicts, documents_page_as_dicts
from customers.models import Account, Charge, Subscription
from invoices.models import Document, DocumentItem, DocumentStatus, DocumentTax
from tests.api.conftest import error_of
from tests.factories import CreditMemoFactory, DocumentFactory, DocumentItemFactory


@pytest.mark.django_db
def test_a_page_is_byte_for_byte_documents_as_dicts():
    # given an invoice of quantities with and without trailing zeros (and
    # none), taxed at a fractional rate and at 0; a credit memo's negative
    # lines; a document without items or taxes
    invoice = DocumentFactory(amount=Decimal("1234567.80"), subtotal=Decimal("1234567.05"))
    for quantity in (Decimal("12.500000"), Decimal("0"), Decimal("1000"), None):
        DocumentItemFactory(document=invoice, amount=Decimal("0.05"), quantity=quantity)
    DocumentTax.objects.create(
        document=invoice,
        position=1,
        code="ST",
        name="State",
        rate=Decimal("8.8750"),
        amount=Decimal("0.75"),
    )
    DocumentTax.objects.create(
        document=invoice,
        position=2,
        code="ZERO",
        name="Zero",
        rate=Decimal("0"),
        amount=Decimal("0.00"),
    )
    memo = CreditMemoFactory(amount=Decimal("10.00"), subtotal=Decimal("-10.00"))
    DocumentItemFactory(document=memo, quantity=Decimal("0.000125"))
    DocumentTax.objects.create(
        document=memo,
        position=1,
        code="VAT",
        name="VAT",
        rate=Decimal("20.0000"),
        amount=Decimal("-2.00"),
    )
    bare = DocumentFactory(amount=Decimal("0.00"))
    documents = Document.all_objects.filter(pk__in=[invoice.pk, memo.pk, bare.pk])
    # when
    page = sorted(documents_page_as_dicts(documents.order_by("pk")[:3].values("pk")))
    # then
    expected = documents_as_dicts(documents)
    assert [pk for pk, _ in page] == [invoice.pk, memo.pk, bare.pk]
    assert json.dumps([shown for _, shown in page]) == json.dumps(expected)
    assert [item["quantity"] for item in expected[0]["items"]] == ["12.5", "0", "1000", None]
    assert [tax["rate"] for tax in expected[0]["taxes"]] == ["8.875", "0"]
    assert expected[2]["items"] == expected[2]["taxes"] == []


# Every character JSON escapes, and some it does not: quotes, backslashes,
# control characters (named and \u00xx), DEL, non-ASCII, astral, U+2028 and
# U+2029 (which DRF's JSONRenderer escapes), a slash.
AWKWARD = 'Q"uote \\ back\nnl\ttab\x01\x1f\x7f é 中 😀 \u2028 \u2029 / end'


def _run_of_awkward_documents():
    """A run of five documents: an invoice whose strings need escaping
    (account, subscription and charge numbers, charge name, tax code,
    currency), with a tax line; a credit memo; a document without items; a
    Preview document (no number); another invoice."""
    run = services.bill_run_create(target_date=datetime.date(2026, 2, 1), enqueue=False)
    invoice = DocumentFactory(bill_run=run, amount=Decimal("-0.05"), subtotal=Decimal("12.50"))
    item = DocumentItemFactory(document=invoice, quantity=Decimal("2.500000"))
    DocumentItemFactory(document=invoice, quantity=None)
    Account.objects.filter(pk=invoice.account_id).update(number='A"\\é1')
    Subscription.objects.filter(pk=item.subscription_id).update(number='S"\\\n1')
    Charge.objects.filter(pk=item.charge_id).update(number='C"\\\u20281')
    DocumentItem.objects.filter(pk=item.pk).update(charge_name=AWKWARD)
    Document.objects.filter(pk=invoice.pk).update(currency='U"\\')
    DocumentTax.objects.create(
        document=invoice,
        position=1,
        code='T"\\\t',
        name="T",
        rate=Decimal("7.2500"),
        amount=Decimal("0.91"),
    )
    memo = CreditMemoFactory(bill_run=run, amount=Decimal("10.00"), subtotal=Decimal("-10.00"))
    DocumentItemFactory(document=memo, quantity=Decimal("0"))
    DocumentFactory(bill_run=run, amount=Decimal("0.00"))
    preview = DocumentFactory(bill_run=run, number=None, status=DocumentStatus.PREVIEW)
    DocumentItemFactory(document=preview, preview=True)
    DocumentFactory(bill_run=run)
    return run


def _rendered(value, accepted=None):
    return JSONRenderer().render(value, accepted)


@pytest.mark.django_db
@pytest.mark.parametrize("pooled", [False, True], ids=["prepared", "behind a pooler"])
def test_the_run_pages_are_byte_for_byte_drf_rendering_billrun_show(api, monkeypatch, pooled):
    # given a run of five documents with strings that need escaping (and, on
    # PostgreSQL, a database behind a pooler in transaction mode: the page's
    # statement planned every time, not prepared)
    if pooled:
        monkeypatch.setitem(connection.settings_dict, "DISABLE_SERVER_SIDE_CURSORS", True)
    run = _run_of_awkward_documents()
    expected = documents_as_dicts(Document.all_objects.filter(bill_run=run))
    assert len(expected) == 5
    assert expected[0]["items"][0]["charge"] == AWKWARD
    # when its pages of two are read through the API
    url, bodies, statements = f"/api/v1/bill-runs/{run.number}/documents/?limit=2", [], []
    while url:
        with CaptureQueriesContext(connection) as queries:
            response = api.get(url)
        statements.extend(query["sql"].split("(")[0].split()[0] for query in queries)
        assert response.status_code == 200
        assert response["Content-Type"] == "application/json"
        bodies.append(response.content)
        url = response.json()["next"]
    # then each is byte for byte what DRF renders of billrun show's documents
    # (with the next link the body has: followed, it reads the next page)
    assert len(bodies) == 3
    for number, body in enumerate(bodies):
        following = json.loads(body)["next"]
        page = {"results": expected[2 * number : 2 * number + 2], "next": following}
        assert body == _rendered(page)
    assert b"\\u2028" in bodies[0] and "\u2028".encode() not in bodies[0]
    assert "中 😀".encode() in bodies[0]
    assert json.loads(bodies[0])["results"][0]["items"][0]["charge"] == AWKWARD
    if connection.vendor == "postgresql":
        # (prepared once per connection, maybe by an earlier test's page)
        assert statements.count("EXECUTE") == (0 if pooled else 3)


@pytest.mark.django_db
def test_a_page_asked_with_an_indent_is_drf_rendering_with_that_indent(api):
    run = _run_of_awkward_documents()
    accepted = "application/json; indent=2"
    response = api.client.get(f"/api/v1/bill-runs/{run.number}/documents/", HTTP_ACCEPT=accepted)
    assert response.status_code == 200
    expected = documents_as_dicts(Document.all_objects.filter(bill_run=run))
    assert response.content == _rendered({"results": expected, "next": None}, accepted)
    assert b'\n  "results": [' in response.content


@pytest.mark.django_db
def test_a_page_of_exactly_the_rest_has_no_next_and_a_cursor_past_the_end_is_empty(api):
    run = _run_of_awkward_documents()
    base = f"/api/v1/bill-runs/{run.number}/documents/"
    first = api.get(f"{base}?limit=3").json()
    rest = api.get(first["next"]).json()
    assert (len(first["results"]), len(rest["results"]), rest["next"]) == (3, 2, None)
    assert api.get(f"{base}?limit=5").json()["next"] is None
    last_id = Document.all_objects.filter(bill_run=run).order_by("pk").last().pk
    past = make_cursor(last_id, scope=base)
    assert api.get(f"{base}?cursor={past}").json() == {"results": [], "next": None}
    # (an unknown run is 404 with a cursor too; a forged cursor is 400)
    unknown = "/api/v1/bill-runs/BR-99999999/documents/"
    error_of(api.get(f"{unknown}?cursor={make_cursor(1, scope=unknown)}"), 404, "not_found")
    error_of(api.get(f"{base}?cursor=abc"), 400, "invalid")
    error_of(api.get(f"{base}?cursor={make_cursor(1, scope='/api/v1/documents/')}"), 400, "invalid")
    error_of(api.get(f"{base}?limit=101"), 400, "invalid")


@pytest.mark.django_db
def test_the_page_needs_view_billrun_granted_by_the_role_or_to_the_key_itself(api, clerk_key):
    # given a run, and the clerk role losing view_billrun
    run = _run_of_awkward_documents()
    path = f"/api/v1/bill-runs/{run.number}/documents/"
    view = Permission.objects.get(content_type__app_label="billruns", codename="view_billrun")
    assert api.get(path).status_code == 200
    clerk_key[0].user.groups.get().permissions.remove(view)
    # then the page is refused, the root is not
    error_of(api.get(path), 403, "forbidden")
    assert api.get("/api/v1/").status_code == 200
    # when the key's own user is given it, the page is read again
    clerk_key[0].user.user_permissions.add(view)
    assert api.get(path).status_code == 200
    # and a revoked key is 401, before any permission
    api_key_revoke(name=clerk_key[0].name)
    error_of(api.get(path), 401, "unauthenticated")


@pytest.mark.django_db
def test_a_new_session_prepares_the_page_statement_again(api):
    if connection.vendor != "postgresql":
        pytest.skip("the statement is prepared on PostgreSQL only")
    # given a page read once (its statement prepared on this session)
    run = _run_of_awkward_documents()
    path = f"/api/v1/bill-runs/{run.number}/documents/"
    first = api.get(path).content
    # when the session no longer has it (as a new connection would not)
    with connection.cursor() as cursor:
        cursor.execute(f"DEALLOCATE {PAGE_STATEMENT}")
    del connection.connection.billing_run_documents_page_prepared
    with CaptureQueriesContext(connection) as queries:
        again = api.get(path).content
    # then it is prepared again, and the page is the same
    assert again == first
    assert [q["sql"].split()[0] for q in queries].count("PREPARE") == 1
