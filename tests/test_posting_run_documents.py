import datetime
import itertools

import pytest
from django.utils import timezone

from billruns.models import BillRun
from invoices.models import Document, DocumentStatus
from invoices.services import documents_post_for_run
from tests.factories import CreditMemoFactory, DocumentFactory

_numbers = itertools.count(1)


def make_run():
    return BillRun.objects.create(
        number=f"BR-{next(_numbers):08d}",
        status="Completed",
        target_date=datetime.date(2026, 2, 1),
        invoice_date=datetime.date(2026, 2, 1),
    )


def statuses(documents):
    return [Document.objects.get(pk=document.pk).status for document in documents]


@pytest.mark.django_db
def test_posting_a_run_posts_its_draft_invoices_and_counts_them(clerk):
    # given
    run = make_run()
    invoices = DocumentFactory.create_batch(5, bill_run=run)
    # when
    posted = documents_post_for_run(bill_run_id=run.pk, user=clerk, include_credit_memos=False)
    # then
    assert posted == 5
    for invoice in Document.objects.filter(pk__in=[i.pk for i in invoices]):
        assert invoice.status == DocumentStatus.POSTED
        assert invoice.posted_at is not None
        assert invoice.posted_by == clerk
        assert invoice.balance == invoice.amount


@pytest.mark.django_db
def test_posting_a_run_leaves_other_runs_and_non_drafts_exactly_as_they_were(clerk, superuser):
    run, other_run = make_run(), make_run()
    drafts = DocumentFactory.create_batch(3, bill_run=run)
    earlier = timezone.now() - datetime.timedelta(days=1)
    already_posted = DocumentFactory.create_batch(
        2, bill_run=run, status=DocumentStatus.POSTED, posted_at=earlier, posted_by=superuser
    )
    canceled = DocumentFactory.create_batch(2, bill_run=run, status=DocumentStatus.CANCELED)
    other_drafts = DocumentFactory.create_batch(2, bill_run=other_run)

    posted = documents_post_for_run(bill_run_id=run.pk, user=clerk, include_credit_memos=False)

    assert posted == 3
    assert statuses(drafts) == [DocumentStatus.POSTED] * 3
    assert statuses(canceled) == [DocumentStatus.CANCELED] * 2
    assert statuses(other_drafts) == [DocumentStatus.DRAFT] * 2
    for document in already_posted:
        document.refresh_from_db()
        assert (document.status, document.posted_at, document.posted_by) == (
            DocumentStatus.POSTED,
            earlier,
            superuser,
        )


@pytest.mark.django_db
def test_credit_memos_of_a_run_are_posted_only_when_asked(clerk):
    run = make_run()
    invoices = DocumentFactory.create_batch(2, bill_run=run)
    credit_memos = CreditMemoFactory.create_batch(2, bill_run=run)

    assert documents_post_for_run(bill_run_id=run.pk, user=clerk, include_credit_memos=False) == 2
    assert statuses(invoices) == [DocumentStatus.POSTED] * 2
    assert statuses(credit_memos) == [DocumentStatus.DRAFT] * 2

    assert documents_post_for_run(bill_run_id=run.pk, user=clerk, include_credit_memos=True) == 2
    assert statuses(credit_memos) == [DocumentStatus.POSTED] * 2


@pytest.mark.django_db
def test_posting_a_posted_run_again_posts_nothing(clerk):
    run = make_run()
    DocumentFactory.create_batch(3, bill_run=run)
    documents_post_for_run(bill_run_id=run.pk, user=clerk, include_credit_memos=True)

    assert documents_post_for_run(bill_run_id=run.pk, user=clerk, include_credit_memos=True) == 0


@pytest.mark.django_db
def test_a_run_is_posted_in_batches_of_the_given_size(clerk):
    run = make_run()
    DocumentFactory.create_batch(7, bill_run=run)
    batches = []

    posted = documents_post_for_run(
        bill_run_id=run.pk,
        user=clerk,
        include_credit_memos=False,
        batch_size=3,
        after_batch=batches.append,
    )

    assert posted == 7
    assert batches == [1, 2, 3]


@pytest.mark.django_db
def test_a_failure_mid_way_leaves_earlier_batches_posted_and_posting_again_posts_the_rest(
    clerk,
):
    # given: 10 drafts, posted 3 at a time, failing after the second batch
    run = make_run()
    invoices = DocumentFactory.create_batch(10, bill_run=run)

    def fail_after_second_batch(batch_number):
        if batch_number == 2:
            raise RuntimeError("database went away")

    # when
    with pytest.raises(RuntimeError, match="database went away"):
        documents_post_for_run(
            bill_run_id=run.pk,
            user=clerk,
            include_credit_memos=False,
            batch_size=3,
            after_batch=fail_after_second_batch,
        )
    # then: the first two batches, by id, are posted; the rest are still drafts
    assert statuses(invoices) == [DocumentStatus.POSTED] * 6 + [DocumentStatus.DRAFT] * 4
    first_posted_at = [Document.objects.get(pk=invoice.pk).posted_at for invoice in invoices[:6]]

    assert (
        documents_post_for_run(
            bill_run_id=run.pk, user=clerk, include_credit_memos=False, batch_size=3
        )
        == 4
    )
    assert statuses(invoices) == [DocumentStatus.POSTED] * 10
    assert [Document.objects.get(pk=i.pk).posted_at for i in invoices[:6]] == first_posted_at
