"""Bill runs through the API: the same services, JSON and refusals as
``billrun`` (INTERFACES.md, HTTP API)."""

import io
import json

import pytest
from django.core.management import call_command

from billruns.models import BillRun, BillRunEvent, RunStatus
from customers.models import AccountTaxCode
from customers.services import tax_rate_set
from invoices.models import Document, DocumentItem, DocumentStatus
from tests.api.conftest import error_of
from tests.factories import AccountFactory, ChargeFactory

RUNS = "/api/v1/bill-runs/"


def shown(number, *flags):
    out = io.StringIO()
    call_command("billrun", "show", number, "--json", *flags, stdout=out)
    return json.loads(out.getvalue())


def create(api, capture, body=None, **kw):
    with capture(execute=True):
        response = api.post(RUNS, {"target_date": "2026-01-01", **(body or {})}, **kw)
    return response


@pytest.fixture
def charges(db):
    return [ChargeFactory(), ChargeFactory()]


@pytest.mark.django_db
def test_create_answers_202_with_the_run_created_by_the_key(
    api, charges, django_capture_on_commit_callbacks
):
    # when
    response = create(api, django_capture_on_commit_callbacks)
    # then
    assert response.status_code == 202, response.content
    run = BillRun.objects.get()
    assert response.json()["number"] == run.number
    assert run.created_by.username == "key:crm"
    assert BillRunEvent.objects.filter(bill_run=run).first().user.username == "key:crm"
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert run.invoices_count == 2


@pytest.mark.django_db
def test_the_run_and_its_documents_are_exactly_billrun_show_json(
    api, charges, django_capture_on_commit_callbacks
):
    # given
    number = create(api, django_capture_on_commit_callbacks).json()["number"]
    # when
    run = api.get(f"{RUNS}{number}/")
    documents = api.get(f"{RUNS}{number}/documents/?limit=1")
    rest = api.get(documents.json()["next"])
    # then
    assert run.status_code == 200
    assert run.json() == shown(number)
    assert (
        documents.json()["results"] + rest.json()["results"]
        == shown(number, "--documents")["documents"]
    )
    assert rest.json()["next"] is None


@pytest.mark.django_db
def test_pages_of_taxed_documents_and_one_without_items_are_billrun_show_json(
    api, django_capture_on_commit_callbacks
):
    # given a run of three accounts taxed at two codes, in their order, one
    # with two charges, and a document left without items
    rates = [tax_rate_set(code, rate) for code, rate in [("VAT20", "20"), ("GST", "5")]]
    for n in range(3):
        account = AccountFactory()
        for position, rate in enumerate(reversed(rates) if n == 1 else rates, start=1):
            AccountTaxCode.objects.create(account=account, tax_rate=rate, position=position)
        charge = ChargeFactory(subscription__account=account)
        if n == 2:
            ChargeFactory(subscription=charge.subscription)
    number = create(api, django_capture_on_commit_callbacks).json()["number"]
    emptied = Document.objects.filter(bill_run__number=number).order_by("id").first()
    DocumentItem.all_objects.filter(document=emptied).delete()
    # when read two at a time
    first = api.get(f"{RUNS}{number}/documents/?limit=2").json()
    rest = api.get(first["next"]).json()
    # then
    expected = shown(number, "--documents")["documents"]
    assert first["results"] + rest["results"] == expected
    assert rest["next"] is None
    assert [len(d["items"]) for d in expected] == [0, 1, 2]
    assert [[t["code"] for t in d["taxes"]] for d in expected] == [
        ["VAT20", "GST"],
        ["GST", "VAT20"],
        ["VAT20", "GST"],
    ]


@pytest.mark.django_db
def test_a_run_without_documents_lists_none_and_an_unknown_run_is_404(
    api, db, django_capture_on_commit_callbacks
):
    # given a run of no account
    number = create(api, django_capture_on_commit_callbacks).json()["number"]
    # then
    assert api.get(f"{RUNS}{number}/documents/").json() == {"results": [], "next": None}
    error_of(api.get(f"{RUNS}BR-99999999/documents/"), 404, "not_found")


@pytest.mark.django_db
def test_create_takes_every_option(api, db):
    # given
    account = AccountFactory()
    # when
    response = api.post(
        RUNS,
        {
            "target_date": "2026-02-01",
            "invoice_date": "2026-02-03",
            "account": account.number,
            "auto_post": True,
            "auto_email": True,
            "no_email_for_zero_amount": True,
            "exclude_charge_types": ["usage"],
        },
    )
    # then
    assert response.status_code == 202, response.content
    run = BillRun.objects.get()
    assert (str(run.target_date), str(run.invoice_date)) == ("2026-02-01", "2026-02-03")
    assert (run.account, run.auto_post, run.auto_email) == (account, True, True)
    assert run.exclude_charge_types == ["usage"]


@pytest.mark.django_db
def test_batches_and_bill_cycle_day(api, db):
    response = api.post(RUNS, {"batches": [2, 7], "bill_cycle_day": 15})
    assert response.status_code == 202, response.content
    run = BillRun.objects.get()
    assert (run.batches, run.bill_cycle_days) == ([2, 7], [15])


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, field",
    [
        ({"target_date": "2026-02-30"}, "target_date"),
        ({"target_date": 20260201}, "target_date"),
        ({"target_date": "9999-01-01"}, "target_date"),
        ({"batches": [51]}, "batches[0]"),
        ({"batches": ["2"]}, "batches[0]"),
        ({"batches": 2}, "batches"),
        ({"bill_cycle_day": 0}, "bill_cycle_day"),
        ({"bill_cycle_day": "15"}, "bill_cycle_day"),
        ({"auto_post": "yes"}, "auto_post"),
        ({"exclude_charge_types": ["taxes"]}, "exclude_charge_types[0]"),
        ({"account": "A404"}, "account"),
        ({"account": "A00000001", "batches": [1]}, "__all__"),
        ({"preview": "yes"}, "preview"),
        ({"preview": True, "auto_post": True}, "auto_post"),
        ({"preview": True, "auto_email": True}, "auto_email"),
        ({"preview": True, "no_email_for_zero_amount": True}, "no_email_for_zero_amount"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_bad_parameters_are_400_naming_the_field_and_create_nothing(api, body, field):
    # given
    AccountFactory(number="A00000001")
    # when
    error = error_of(api.post(RUNS, body), 400, "invalid")
    # then
    assert field in error["fields"], error
    assert not BillRun.objects.exists()


@pytest.mark.django_db
def test_a_body_that_is_not_an_object_is_400(api):
    error_of(api.post(RUNS, raw="[1, 2]"), 400, "invalid")
    error_of(api.post(RUNS, raw="{not json"), 400, "invalid")
    error_of(api.post(RUNS, raw='{"a": 1, "a": 2}'), 400, "invalid")
    error_of(api.post(RUNS, raw='{"batches": [NaN]}'), 400, "invalid")
    assert not BillRun.objects.exists()


@pytest.mark.django_db
def test_post_cancel_retry_delete_email(api, charges, django_capture_on_commit_callbacks):
    # given a Completed run
    number = create(api, django_capture_on_commit_callbacks).json()["number"]
    # when posted
    with django_capture_on_commit_callbacks(execute=True):
        posted = api.post(f"{RUNS}{number}/post/")
    # then
    assert posted.status_code == 202, posted.content
    assert posted.json()["number"] == number
    run = BillRun.objects.get(number=number)
    assert run.status == RunStatus.POSTED
    assert set(Document.objects.values_list("status", flat=True)) == {DocumentStatus.POSTED}
    assert run.events.order_by("id").last().user.username == "key:crm"
    # a Posted run cannot be canceled: 409 with the command's message
    error = error_of(api.post(f"{RUNS}{number}/cancel/"), 409, "refused")
    assert (
        error["message"]
        == f"{number} is Posted: it can be canceled only when it is Pending or Completed."
    )
    # nor deleted
    error_of(api.delete(f"{RUNS}{number}/"), 409, "refused")
    # its documents are emailed
    with django_capture_on_commit_callbacks(execute=True):
        emailed = api.post(f"{RUNS}{number}/email/", {"resend": False})
    assert emailed.status_code == 202, emailed.content
    from django.core import mail

    assert len(mail.outbox) == 2
    # a retry of a run without failures is refused
    error_of(api.post(f"{RUNS}{number}/retry/"), 409, "refused")
    error_of(api.post(f"{RUNS}{number}/email/", {"resend": "no"}), 400, "invalid")
    error_of(api.post(f"{RUNS}{number}/post/", {"now": True}), 400, "invalid")


@pytest.mark.django_db
def test_cancel_then_delete(api, charges, django_capture_on_commit_callbacks):
    number = create(api, django_capture_on_commit_callbacks).json()["number"]
    with django_capture_on_commit_callbacks(execute=True):
        canceled = api.post(f"{RUNS}{number}/cancel/")
    assert canceled.status_code == 202
    assert BillRun.objects.get(number=number).status == RunStatus.CANCELED
    error_of(api.post(f"{RUNS}{number}/post/"), 409, "refused")
    deleted = api.delete(f"{RUNS}{number}/")
    assert deleted.status_code == 204
    assert not BillRun.objects.filter(number=number).exists()
    error_of(api.get(f"{RUNS}{number}/"), 404, "not_found")
    error_of(api.post(f"{RUNS}{number}/post/"), 404, "not_found")


@pytest.mark.django_db
def test_retry_answers_the_new_run(api, django_capture_on_commit_callbacks):
    AccountFactory(bill_to_email="")
    ChargeFactory()
    number = create(api, django_capture_on_commit_callbacks).json()["number"]
    failures = api.get(f"{RUNS}{number}/failures/")
    assert failures.status_code == 200
    assert len(failures.json()["results"]) == 1
    assert failures.json()["results"] == shown(number)["failures"]
    with django_capture_on_commit_callbacks(execute=True):
        retried = api.post(f"{RUNS}{number}/retry/")
    assert retried.status_code == 202, retried.content
    new = retried.json()
    assert new["retry_of"] == number
    assert new["created_by"] == "key:crm"


@pytest.mark.django_db
def test_list_newest_first_with_a_status_filter(api, charges, django_capture_on_commit_callbacks):
    first = create(api, django_capture_on_commit_callbacks).json()["number"]
    second = api.post(RUNS, {"target_date": "2026-02-01"}).json()["number"]
    listed = api.get(RUNS).json()
    assert [run["number"] for run in listed["results"]] == [second, first]
    assert listed["results"][1] == shown(first)
    pending = api.get(f"{RUNS}?status=Pending").json()["results"]
    assert [run["number"] for run in pending] == [second]
    error_of(api.get(f"{RUNS}?status=Done"), 400, "invalid")


@pytest.mark.django_db
def test_a_viewer_reads_but_cannot_act(
    viewer_api, charges, api, django_capture_on_commit_callbacks
):
    number = create(api, django_capture_on_commit_callbacks).json()["number"]
    assert viewer_api.get(f"{RUNS}{number}/").status_code == 200
    assert viewer_api.get(RUNS).status_code == 200
    error_of(viewer_api.post(RUNS, {}), 403, "forbidden")
    for action in ("post", "cancel", "retry", "email"):
        error_of(viewer_api.post(f"{RUNS}{number}/{action}/"), 403, "forbidden")
    error_of(viewer_api.delete(f"{RUNS}{number}/"), 403, "forbidden")
    assert BillRun.objects.get().status == RunStatus.COMPLETED
    assert BillRun.objects.count() == 1
