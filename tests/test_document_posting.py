import threading
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.messages import get_messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.db import connection
from django.test import RequestFactory

from invoices.admin_actions import PostDocumentsAdminMixin, post_selected_documents
from invoices.models import Document, DocumentStatus, TenantSettings
from invoices.services import DocumentActionRefused, PostingRefused, document_post
from tests.factories import CreditMemoFactory, DocumentFactory


def set_advanced_ar_settlement(on):
    settings = TenantSettings.load()
    settings.advanced_ar_settlement = on
    settings.save()


def snapshot(document):
    document.refresh_from_db()
    return (document.status, document.posted_at, document.posted_by_id, document.balance)


@pytest.mark.django_db
def test_posting_a_draft_invoice_makes_it_posted_with_its_amount_open(clerk):
    # given
    invoice = DocumentFactory(amount=Decimal("204.84"))
    # when
    posted = document_post(document_id=invoice.pk, user=clerk)
    # then
    invoice.refresh_from_db()
    assert posted.pk == invoice.pk
    assert invoice.status == DocumentStatus.POSTED
    assert invoice.posted_at is not None
    assert invoice.posted_by == clerk
    assert invoice.balance == Decimal("204.84")


@pytest.mark.django_db
def test_posting_a_zero_and_a_negative_invoice_works_like_any_other(clerk):
    zero = DocumentFactory(amount=Decimal("0.00"))
    negative = DocumentFactory(amount=Decimal("-12.50"))

    document_post(document_id=zero.pk, user=clerk)
    document_post(document_id=negative.pk, user=clerk)

    zero.refresh_from_db()
    negative.refresh_from_db()
    assert (zero.status, zero.balance) == (DocumentStatus.POSTED, Decimal("0.00"))
    assert (negative.status, negative.balance) == (DocumentStatus.POSTED, Decimal("-12.50"))


@pytest.mark.django_db
def test_posting_twice_is_refused_as_already_posted_and_changes_nothing(clerk, superuser):
    invoice = DocumentFactory()
    document_post(document_id=invoice.pk, user=clerk)
    before = snapshot(invoice)

    with pytest.raises(PostingRefused) as refused:
        document_post(document_id=invoice.pk, user=superuser)

    assert str(refused.value) == (
        f"{invoice.number} is already Posted: only Draft documents can be posted."
    )
    assert snapshot(invoice) == before


@pytest.mark.django_db
def test_posting_a_canceled_invoice_is_refused_and_changes_nothing(clerk):
    invoice = DocumentFactory(status=DocumentStatus.CANCELED)
    before = snapshot(invoice)

    with pytest.raises(PostingRefused) as refused:
        document_post(document_id=invoice.pk, user=clerk)

    assert str(refused.value) == (
        f"{invoice.number} is Canceled: only Draft documents can be posted."
    )
    assert snapshot(invoice) == before


@pytest.mark.django_db
def test_posting_an_unknown_document_is_refused(clerk):
    with pytest.raises(DocumentActionRefused, match="no invoice or credit memo with id 999999"):
        document_post(document_id=999999, user=clerk)


@pytest.mark.django_db
def test_a_credit_memo_is_not_posted_without_advanced_ar_settlement(clerk):
    set_advanced_ar_settlement(False)
    credit_memo = CreditMemoFactory()
    before = snapshot(credit_memo)

    with pytest.raises(PostingRefused) as refused:
        document_post(document_id=credit_memo.pk, user=clerk)

    assert str(refused.value) == (
        f"{credit_memo.number} is a credit memo: credit memos can only be posted "
        "while Advanced AR Settlement is on."
    )
    assert snapshot(credit_memo) == before


@pytest.mark.django_db
def test_a_credit_memo_is_posted_with_advanced_ar_settlement(clerk):
    set_advanced_ar_settlement(True)
    credit_memo = CreditMemoFactory(amount=Decimal("30.00"))

    document_post(document_id=credit_memo.pk, user=clerk)

    credit_memo.refresh_from_db()
    assert credit_memo.status == DocumentStatus.POSTED
    assert credit_memo.posted_by == clerk
    assert credit_memo.balance == Decimal("30.00")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_clerks_posting_the_same_invoice_at_once_post_it_once(superuser, django_user_model):
    # Plain users, not the clerk fixture: a transactional test flushes the roles' groups.
    other = django_user_model.objects.create_user("other")
    invoice = DocumentFactory()
    start = threading.Barrier(2)
    outcomes = []

    def post(user):
        try:
            start.wait()
            document_post(document_id=invoice.pk, user=user)
            outcomes.append("posted")
        except PostingRefused as refused:
            outcomes.append(str(refused))
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(user,)) for user in (superuser, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == [
        f"{invoice.number} is already Posted: only Draft documents can be posted.",
        "posted",
    ]
    invoice.refresh_from_db()
    assert invoice.status == DocumentStatus.POSTED


class DocumentAdmin(PostDocumentsAdminMixin, admin.ModelAdmin):
    actions = [post_selected_documents]


def admin_request(user):
    # As the action's confirmation page sends it back (post=yes).
    request = RequestFactory().post("/admin/invoices/document/", {"post": "yes"})
    request.user = user
    request.session = {}
    request._messages = FallbackStorage(request)
    return request


@pytest.mark.django_db
def test_the_admin_action_posts_the_drafts_and_says_which_were_refused_and_why(superuser):
    set_advanced_ar_settlement(False)
    drafts = [DocumentFactory(), DocumentFactory()]
    posted = DocumentFactory()
    document_post(document_id=posted.pk, user=superuser)
    credit_memo = CreditMemoFactory()
    model_admin = DocumentAdmin(Document, admin.site)
    request = admin_request(superuser)

    post_selected_documents(
        model_admin,
        request,
        Document.objects.filter(pk__in=[d.pk for d in [*drafts, posted, credit_memo]]),
    )

    assert [Document.objects.get(pk=d.pk).status for d in drafts] == [DocumentStatus.POSTED] * 2
    assert Document.objects.get(pk=credit_memo.pk).status == DocumentStatus.DRAFT
    assert [str(message) for message in get_messages(request)] == [
        "Posted 2 documents.",
        f"2 not posted: {posted.number} is already Posted: only Draft documents can be posted. "
        f"{credit_memo.number} is a credit memo: credit memos can only be posted "
        "while Advanced AR Settlement is on.",
    ]


@pytest.mark.django_db
def test_the_admin_action_is_offered_only_to_users_who_may_post_documents(clerk, viewer):
    model_admin = DocumentAdmin(Document, admin.site)

    assert "post_selected_documents" in model_admin.get_actions(admin_request(clerk))
    assert "post_selected_documents" not in model_admin.get_actions(admin_request(viewer))
