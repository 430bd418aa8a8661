"""Posting one document of a bill run on its own: the rule that billruns adds
to invoices' document_post (invoices knows no run), on the document's page."""

import datetime

import pytest

from billruns import services
from invoices.models import Document, DocumentStatus
from invoices.services import document_post_refusal
from tests.factories import ChargeFactory

JAN = datetime.date(2026, 1, 1)


def page(document, suffix=""):
    return f"/billing/invoices/{document.number}/{suffix}"


def processing_run_with_a_draft(settings):
    """A run with one of its two chunks done: a Draft exists, the run may yet fail."""
    settings.BILLRUN_CHUNK_SIZE = 1
    ChargeFactory()
    ChargeFactory()
    run = services.bill_run_create(target_date=JAN, enqueue=False)
    first, _ = services.bill_run_start(run_id=run.pk, enqueue_chunks=False)
    services.bill_run_process_chunk(chunk_id=first)
    return run, Document.objects.get(bill_run=run)


@pytest.mark.django_db
def test_the_page_of_a_draft_of_a_run_still_processing_offers_no_post(client, clerk, settings):
    # given
    run, draft = processing_run_with_a_draft(settings)
    client.force_login(clerk)
    # when
    html = client.get(page(draft)).content.decode()
    # then
    assert 'data-testid="post-document"' not in html
    assert document_post_refusal(draft).startswith(f"{draft.number} belongs to bill run")


@pytest.mark.django_db
def test_posting_a_draft_of_a_run_still_processing_from_its_page_is_refused(
    client, clerk, settings
):
    # given
    run, draft = processing_run_with_a_draft(settings)
    client.force_login(clerk)
    # when
    response = client.post(page(draft, "post/"), follow=True)
    # then
    assert f"{run.number}, which is Processing" in response.content.decode()
    draft.refresh_from_db()
    assert draft.status == DocumentStatus.DRAFT


@pytest.mark.django_db
def test_the_page_of_a_draft_of_a_completed_run_offers_post(client, clerk):
    # given
    ChargeFactory()
    run = services.bill_run_execute(
        run_id=services.bill_run_create(target_date=JAN, enqueue=False).pk
    )
    draft = run.documents.get()
    client.force_login(clerk)
    # when / then
    assert 'data-testid="post-document"' in client.get(page(draft)).content.decode()
    assert document_post_refusal(draft) == ""
