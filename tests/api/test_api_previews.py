"""Previews through the API (INTERFACES.md, Previews and HTTP API): the
service's preview, its refusals as 400 and 409, its deletion."""

import io
import json

import pytest
from django.core.management import call_command

from billruns.models import BillRun, RunStatus
from invoices.models import Document, DocumentItem, DocumentStatus
from tests.api.conftest import error_of
from tests.factories import AccountFactory, ChargeFactory

RUNS = "/api/v1/bill-runs/"


def shown(number, *flags):
    out = io.StringIO()
    call_command("billrun", "show", number, "--json", *flags, stdout=out)
    return json.loads(out.getvalue())


@pytest.fixture
def preview(api, db, django_capture_on_commit_callbacks):
    """A Completed preview made through the API, with one failed account (so
    that a retry would have something to retry)."""
    ChargeFactory()
    ChargeFactory()
    AccountFactory(bill_to_email="")
    ChargeFactory(subscription__account=AccountFactory(bill_to_email=""))
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(RUNS, {"target_date": "2026-01-01", "preview": True})
    assert response.status_code == 202, response.content
    return response.json()["number"]


@pytest.mark.django_db
def test_a_preview_is_made_and_shown_as_billrun_show_json(api, preview):
    # given
    run = BillRun.objects.get(number=preview)
    # then
    assert run.preview is True
    assert run.status == RunStatus.COMPLETED
    assert run.created_by.username == "key:crm"
    body = api.get(f"{RUNS}{preview}/").json()
    assert body == shown(preview)
    assert body["preview"] is True
    assert body["invoices"] == 2
    # its documents are its own: Preview, without numbers, listed on the run
    documents = api.get(f"{RUNS}{preview}/documents/").json()["results"]
    assert documents == shown(preview, "--documents")["documents"]
    assert [(d["status"], d["number"]) for d in documents] == [("Preview", None)] * 2
    # and out of the documents' list
    assert api.get("/api/v1/documents/").json()["results"] == []
    assert not Document.objects.exists()
    # a real run says it is not one
    listed = api.get(RUNS).json()["results"]
    assert [r["preview"] for r in listed] == [True]


@pytest.mark.django_db
@pytest.mark.parametrize("option", ["auto_post", "auto_email", "no_email_for_zero_amount"])
def test_a_preview_with_a_posting_or_email_option_is_400_naming_it(api, option):
    # when
    error = error_of(api.post(RUNS, {"preview": True, option: True}), 400, "invalid")
    # then
    assert set(error["fields"]) == {option}
    assert "A preview cannot" in error["fields"][option][0]
    assert not BillRun.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("action", "words", "body"),
    [("post", "posted", None), ("retry", "retried", None), ("email", "emailed", {})],
)
def test_post_retry_email_of_a_preview_are_409_with_the_services_message(
    api, preview, action, words, body
):
    # given
    before = Document.all_objects.count(), DocumentItem.all_objects.count()
    # when
    error = error_of(api.post(f"{RUNS}{preview}/{action}/", body), 409, "refused")
    # then
    assert error["message"] == (
        f"{preview} is a preview: a preview is never {words}. Create this run to make the real one."
    )
    assert BillRun.objects.get().status == RunStatus.COMPLETED
    assert BillRun.objects.count() == 1
    assert (Document.all_objects.count(), DocumentItem.all_objects.count()) == before
    assert set(Document.all_objects.values_list("status", flat=True)) == {DocumentStatus.PREVIEW}


@pytest.mark.django_db
def test_a_completed_preview_is_deleted_with_its_documents(api, preview):
    # when
    response = api.delete(f"{RUNS}{preview}/")
    # then
    assert response.status_code == 204
    assert not BillRun.objects.exists()
    assert not Document.all_objects.exists() and not DocumentItem.all_objects.exists()
    error_of(api.get(f"{RUNS}{preview}/"), 404, "not_found")


@pytest.mark.django_db
def test_canceling_a_preview_deletes_it_and_answers_202_with_the_run_as_it_was(api, preview):
    # given the preview as billrun show --json prints it, with its failure
    before = shown(preview)
    assert before["status"] == RunStatus.COMPLETED and before["failures"]
    # when
    response = api.post(f"{RUNS}{preview}/cancel/")
    # then the run as it was at its deletion, Canceled
    assert response.status_code == 202, response.content
    assert response.json() == {**before, "status": RunStatus.CANCELED}
    assert not BillRun.objects.exists() and not Document.all_objects.exists()
    error_of(api.get(f"{RUNS}{preview}/"), 404, "not_found")


@pytest.mark.django_db
def test_canceling_a_preview_twice_is_404_the_second_time(api, preview):
    assert api.post(f"{RUNS}{preview}/cancel/").status_code == 202
    error_of(api.post(f"{RUNS}{preview}/cancel/"), 404, "not_found")


@pytest.mark.django_db
def test_a_pending_preview_is_deleted_and_a_processing_one_is_409(api, db):
    # given a preview whose task has not run
    ChargeFactory()
    pending = api.post(RUNS, {"target_date": "2026-01-01", "preview": True}).json()["number"]
    other = api.post(RUNS, {"target_date": "2026-01-01", "preview": True}).json()["number"]
    BillRun.objects.filter(number=other).update(status=RunStatus.PROCESSING)
    # when / then
    assert api.delete(f"{RUNS}{pending}/").status_code == 204
    error = error_of(api.delete(f"{RUNS}{other}/"), 409, "refused")
    assert error["message"] == (
        f"{other} is a Processing preview: a preview can be deleted only when it is "
        "Pending or Completed or Error or Canceled."
    )
    assert list(BillRun.objects.values_list("number", flat=True)) == [other]
