"""Documents to customers (BILLING_RULES.md): a run's posted documents are
emailed to their bill-to contacts with their PDF attached, never twice unless
resent, and every delivery is recorded on the document."""

import datetime
import re
import smtplib
import threading
import uuid
from decimal import Decimal
from io import StringIO

import pytest
from django.conf import settings
from django.core import mail
from django.core.mail import EmailMessage
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse

from billruns.services import (
    BillRunActionRefused,
    bill_run_create,
    bill_run_email,
    bill_run_execute,
    bill_run_post,
)
from invoices.delivery import EmailOutcome, documents_email
from invoices.models import DeliveryStatus, Document, DocumentDelivery, DocumentStatus
from tests.factories import AccountFactory, ChargeFactory, SubscriptionFactory

TARGET = datetime.date(2026, 2, 1)


def billed_account(amount="100.00", **kwargs):
    account = AccountFactory(**kwargs)
    ChargeFactory(subscription=SubscriptionFactory(account=account), amount=Decimal(amount))
    return account


def completed_run(*, user=None, **options):
    run = bill_run_create(target_date=TARGET, created_by=user, enqueue=False, **options)
    return bill_run_execute(run_id=run.pk)


def post(run, user, capture):
    """Post ``run`` and run what its commit queues (test settings run tasks inline)."""
    with capture(execute=True):
        return bill_run_post(run=run, user=user, wait=True)


def document_emails():
    """The outbox less the run notifications that the notifications app sends."""
    return [message for message in mail.outbox if message.attachments]


def run_command(*argv):
    out = StringIO()
    call_command("billrun", *argv, stdout=out, stderr=StringIO())
    return out.getvalue().strip()


@pytest.mark.django_db
def test_auto_email_after_posting_sends_each_posted_document_once_with_its_pdf(
    superuser, django_capture_on_commit_callbacks
):
    # given
    accounts = [billed_account(), billed_account()]
    run = completed_run(user=superuser, auto_email=True)
    # when
    post(run, superuser, django_capture_on_commit_callbacks)
    # then
    invoices = list(run.documents.order_by("id"))
    assert [m.to for m in document_emails()] == [[a.bill_to_email] for a in accounts]
    for message, invoice in zip(document_emails(), invoices, strict=True):
        assert message.subject == f"Invoice {invoice.number} from {settings.BILLING_ISSUER}"
        assert message.from_email == settings.DEFAULT_FROM_EMAIL
        assert f"Amount: {invoice.amount:,.2f} USD" in message.body
        assert f"Due date: {invoice.due_date.isoformat()}" in message.body
        [(filename, content, mimetype)] = message.attachments
        assert (filename, mimetype) == (f"{invoice.number}.pdf", "application/pdf")
        assert content.startswith(b"%PDF")
    deliveries = DocumentDelivery.objects.order_by("document_id")
    assert [(d.document_id, d.status, d.attempts, d.requested_by) for d in deliveries] == [
        (invoice.id, DeliveryStatus.SENT, 1, None) for invoice in invoices
    ]
    assert all(d.sent_at is not None for d in deliveries)
    # and a task delivered twice sends nothing more
    assert bill_run_email(run=run, user=None) == EmailOutcome(sent=0, skipped=2, failed=0)
    assert len(document_emails()) == 2


@pytest.mark.django_db
def test_a_run_without_auto_email_emails_nothing_when_posted(
    superuser, django_capture_on_commit_callbacks
):
    billed_account()
    run = completed_run(user=superuser)
    post(run, superuser, django_capture_on_commit_callbacks)
    assert document_emails() == []
    assert not DocumentDelivery.objects.exists()


@pytest.mark.django_db
def test_zero_amount_invoices_are_skipped_with_the_option(
    superuser, django_capture_on_commit_callbacks
):
    # given
    billed_account()
    zero = billed_account(amount="0.00")
    run = completed_run(user=superuser, auto_email=True, no_email_for_zero_amount=True)
    zero_invoice = run.documents.get(account=zero)
    assert zero_invoice.amount == 0
    # when
    post(run, superuser, django_capture_on_commit_callbacks)
    # then
    assert len(document_emails()) == 1
    assert zero.bill_to_email not in document_emails()[0].to
    delivery = zero_invoice.deliveries.get()
    assert delivery.status == DeliveryStatus.SKIPPED
    assert "Zero-amount invoice" in delivery.last_error


@pytest.mark.django_db
def test_zero_amount_invoices_are_emailed_without_the_option(
    superuser, django_capture_on_commit_callbacks
):
    billed_account(amount="0.00")
    run = completed_run(user=superuser, auto_email=True)
    post(run, superuser, django_capture_on_commit_callbacks)
    assert len(document_emails()) == 1


@pytest.mark.django_db
def test_no_resend_without_resend_and_resend_with_it(superuser):
    # given
    billed_account()
    billed_account()
    run = bill_run_post(run=completed_run(user=superuser), user=superuser, wait=True)
    # when / then
    assert run_command("email", run.number) == "sent 2, skipped 0, failed 0"
    assert run_command("email", run.number) == "sent 0, skipped 2, failed 0"
    assert len(document_emails()) == 2
    assert run_command("email", run.number, "--resend") == "sent 2, skipped 0, failed 0"
    assert len(document_emails()) == 4
    assert DocumentDelivery.objects.filter(resend=True, status=DeliveryStatus.SENT).count() == 2
    assert set(DocumentDelivery.objects.values_list("requested_by", flat=True)) == {superuser.pk}


@pytest.mark.django_db
def test_a_resend_task_delivered_twice_resends_once(superuser, django_capture_on_commit_callbacks):
    # given: a run emailed once
    billed_account()
    billed_account()
    run = bill_run_post(run=completed_run(user=superuser), user=superuser, wait=True)
    bill_run_email(run=run, user=superuser)
    # when: a resend is queued and its task delivered twice
    with django_capture_on_commit_callbacks(execute=False) as queued:
        bill_run_email(run=run, user=superuser, resend=True, wait=False)
    assert len(queued) == 1
    queued[0]()
    queued[0]()
    # then: each document went out once more, not twice more
    assert len(document_emails()) == 4
    resends = DocumentDelivery.objects.filter(resend=True)
    assert resends.count() == 2
    assert len(set(resends.values_list("resend_request", flat=True))) == 1


@pytest.mark.django_db
def test_a_failed_resend_made_again_sends_what_it_had_not(superuser, monkeypatch):
    # given: a resend whose first document fails at the mail server
    first, second = billed_account(), billed_account()
    run = bill_run_post(run=completed_run(user=superuser), user=superuser, wait=True)
    bill_run_email(run=run, user=superuser)
    real_send = EmailMessage.send

    def refuse_first(message, *args, **kwargs):
        if message.to == [first.bill_to_email]:
            raise smtplib.SMTPServerDisconnected("gone")
        return real_send(message, *args, **kwargs)

    monkeypatch.setattr(EmailMessage, "send", refuse_first)
    key = uuid.uuid4()
    outcome = bill_run_email(run=run, user=superuser, resend=True, resend_request=key)
    assert outcome == EmailOutcome(sent=1, skipped=0, failed=1)
    # when: the same request is made again once the server is back
    monkeypatch.setattr(EmailMessage, "send", real_send)
    outcome = bill_run_email(run=run, user=superuser, resend=True, resend_request=key)
    # then: only the failed one is sent, on its own row, and nothing twice
    assert outcome == EmailOutcome(sent=1, skipped=1, failed=0)
    resent = DocumentDelivery.objects.filter(resend=True, resend_request=key)
    assert sorted(resent.values_list("status", "attempts")) == [("sent", 1), ("sent", 2)]
    assert [m.to for m in document_emails()].count([second.bill_to_email]) == 2


@pytest.mark.django_db
def test_the_database_keeps_one_row_per_resend_request(superuser):
    from django.db import IntegrityError, transaction

    billed_account()
    run = bill_run_post(run=completed_run(user=superuser), user=superuser, wait=True)
    document = run.documents.get()
    key = uuid.uuid4()
    DocumentDelivery.objects.create(
        document=document, status="sent", resend=True, resend_request=key
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        DocumentDelivery.objects.create(
            document=document, status="sent", resend=True, resend_request=key
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        DocumentDelivery.objects.create(document=document, status="sent", resend=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        DocumentDelivery.objects.create(
            document=document, status="sent", resend=False, resend_request=uuid.uuid4()
        )


@pytest.mark.django_db
def test_a_run_that_is_not_posted_is_refused(superuser):
    # given
    billed_account()
    run = completed_run(user=superuser)
    # when / then
    with pytest.raises(BillRunActionRefused, match=f"{run.number} is Completed"):
        bill_run_email(run=run, user=superuser)
    with pytest.raises(CommandError, match=f"{run.number} is Completed"):
        run_command("email", run.number)
    assert document_emails() == []
    assert not DocumentDelivery.objects.exists()


@pytest.mark.django_db
def test_only_posted_documents_are_emailed(superuser):
    billed_account()
    run = completed_run(user=superuser)
    draft = run.documents.get()
    outcome = documents_email(
        document_ids=[draft.id], resend=True, skip_zero_amount=False, requested_by=superuser
    )
    assert outcome == EmailOutcome(sent=0, skipped=1, failed=0)
    assert document_emails() == []
    assert not draft.deliveries.exists()


@pytest.mark.django_db
def test_an_account_without_a_bill_to_contact_is_recorded_as_skipped(superuser):
    # given: the contact was removed after the run billed the account
    billed_account()
    gone = billed_account()
    run = bill_run_post(run=completed_run(user=superuser), user=superuser, wait=True)
    gone.bill_to_email = ""
    gone.save(update_fields=["bill_to_email"])
    # when
    outcome = bill_run_email(run=run, user=superuser)
    # then
    assert outcome == EmailOutcome(sent=1, skipped=1, failed=0)
    delivery = run.documents.get(account=gone).deliveries.get()
    assert delivery.status == DeliveryStatus.SKIPPED
    assert delivery.to_address == ""
    assert f"Account {gone.number} has no bill-to contact" in delivery.last_error


@pytest.mark.django_db
def test_a_mail_server_failure_is_recorded_and_the_other_documents_still_go(superuser, monkeypatch):
    # given: the mail server refuses one recipient
    billed_account()
    refused = billed_account()
    billed_account()
    run = bill_run_post(run=completed_run(user=superuser), user=superuser, wait=True)
    real_send = EmailMessage.send

    def send(message, fail_silently=False):
        if refused.bill_to_email in message.to:
            raise smtplib.SMTPRecipientsRefused({refused.bill_to_email: (550, b"no such user")})
        return real_send(message, fail_silently)

    monkeypatch.setattr(EmailMessage, "send", send)
    # when
    outcome = bill_run_email(run=run, user=superuser)
    # then
    assert outcome == EmailOutcome(sent=2, skipped=0, failed=1)
    assert len(document_emails()) == 2
    delivery = run.documents.get(account=refused).deliveries.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 1)
    assert "no such user" in delivery.last_error
    # and once the server accepts it, the next email sends it, on the same row
    monkeypatch.setattr(EmailMessage, "send", real_send)
    assert bill_run_email(run=run, user=superuser) == EmailOutcome(sent=1, skipped=2, failed=0)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        DeliveryStatus.SENT,
        2,
        "",
    )


@pytest.mark.django_db
def test_a_credit_memo_is_emailed_as_a_credit_memo(superuser):
    from invoices.models import DocumentType
    from tests.view_data import document_row

    memo = document_row(
        document_type=DocumentType.CREDIT_MEMO, status=DocumentStatus.POSTED, amount="40.00"
    )
    documents_email(document_ids=[memo.id], resend=False, skip_zero_amount=True, requested_by=None)
    [message] = document_emails()
    assert message.subject == f"Credit memo {memo.number} from {settings.BILLING_ISSUER}"
    assert "Credit: 40.00 USD" in message.body


# --- the command ----------------------------------------------------------------


@pytest.mark.django_db
def test_the_command_needs_the_email_permission(superuser, viewer):
    billed_account()
    run = bill_run_post(run=completed_run(user=superuser), user=superuser, wait=True)
    with pytest.raises(CommandError, match="may not email bill runs"):
        run_command("email", run.number, "--user", viewer.username)
    with pytest.raises(CommandError, match="No bill run"):
        run_command("email", "BR-99999999")
    assert document_emails() == []


# --- the run page ---------------------------------------------------------------


@pytest.mark.django_db
def test_the_email_button_shows_on_a_posted_run_for_clerks_only(client, clerk, viewer):
    billed_account()
    run = bill_run_post(run=completed_run(user=clerk), user=clerk, wait=True)
    page = reverse("billruns:detail", args=[run.number])
    client.force_login(clerk)
    html = client.get(page).content.decode()
    assert 'data-testid="email-billrun"' in html
    assert 'name="resend"' in html
    client.force_login(viewer)
    assert 'data-testid="email-billrun"' not in client.get(page).content.decode()


@pytest.mark.django_db
def test_the_email_button_does_not_show_before_posting(client, clerk):
    billed_account()
    run = completed_run(user=clerk)
    client.force_login(clerk)
    html = client.get(reverse("billruns:detail", args=[run.number])).content.decode()
    assert 'data-testid="email-billrun"' not in html


@pytest.mark.django_db
def test_a_clerk_emails_a_posted_run_through_the_queue(
    client, clerk, django_capture_on_commit_callbacks
):
    # given
    billed_account()
    run = bill_run_post(run=completed_run(user=clerk), user=clerk, wait=True)
    client.force_login(clerk)
    url = reverse("billruns:email", args=[run.number])
    # when: the click only queues the task
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = client.post(url)
    # then
    assert response.status_code == 302
    assert len(queued) == 1
    assert document_emails() == []
    # and the task sends
    queued[0]()
    assert len(document_emails()) == 1
    delivery = DocumentDelivery.objects.get()
    assert (delivery.status, delivery.requested_by, delivery.resend) == ("sent", clerk, False)
    # and a resend from the page sends again
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"resend": "on"}, follow=True)
    assert "all of them again" in response.content.decode()
    assert len(document_emails()) == 2
    # and the page's dialog carries a key, so submitting it twice resends once
    page = client.get(reverse("billruns:detail", args=[run.number])).content.decode()
    key = re.search(r'name="resend_request" value="([0-9a-f-]{36})"', page).group(1)
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            client.post(url, {"resend": "on", "resend_request": key})
    assert len(document_emails()) == 3
    # and a malformed key is a new request, not an error
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"resend": "on", "resend_request": "x' OR 1=1"})
    assert response.status_code == 302
    assert len(document_emails()) == 4


@pytest.mark.django_db
def test_emailing_a_run_that_is_not_posted_shows_the_refusal(client, clerk):
    billed_account()
    run = completed_run(user=clerk)
    client.force_login(clerk)
    response = client.post(reverse("billruns:email", args=[run.number]), follow=True)
    assert f"{run.number} is Completed" in response.content.decode()
    assert document_emails() == []


@pytest.mark.django_db
def test_viewers_may_not_email_a_run(client, clerk, viewer):
    billed_account()
    run = bill_run_post(run=completed_run(user=clerk), user=clerk, wait=True)
    client.force_login(viewer)
    assert client.post(reverse("billruns:email", args=[run.number])).status_code == 403
    assert document_emails() == []


# --- the document page ----------------------------------------------------------


@pytest.mark.django_db
def test_the_document_page_shows_its_deliveries(client, superuser, viewer):
    billed_account()
    run = bill_run_post(run=completed_run(user=superuser), user=superuser, wait=True)
    bill_run_email(run=run, user=superuser)
    invoice = run.documents.get()
    client.force_login(viewer)
    html = client.get(reverse("invoices:detail", args=[invoice.number])).content.decode()
    assert 'data-testid="document-deliveries"' in html
    assert invoice.account.bill_to_email in html
    assert "Sent" in html and superuser.username in html


# --- concurrency ----------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_emails_of_one_document_send_it_once(superuser):
    # given
    billed_account()
    run = bill_run_post(run=completed_run(user=superuser), user=superuser, wait=True)
    invoice_id = Document.objects.get(bill_run=run).id
    start = threading.Barrier(2)
    outcomes = []

    def email():
        try:
            start.wait()
            outcomes.append(
                documents_email(
                    document_ids=[invoice_id],
                    resend=False,
                    skip_zero_amount=False,
                    requested_by=None,
                )
            )
        finally:
            connection.close()

    # when
    threads = [threading.Thread(target=email) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then
    assert sorted(o.sent for o in outcomes) == [0, 1]
    assert len(document_emails()) == 1
    assert DocumentDelivery.objects.get().status == DeliveryStatus.SENT


@pytest.mark.django_db
def test_the_issuer_names_the_sender_in_the_subject_and_heads_the_pdf(superuser, settings):
    from django.template.loader import render_to_string

    settings.BILLING_ISSUER = "Acme Billing Ltd\n1 Main Street, Springfield"
    billed_account()
    run = bill_run_post(run=completed_run(user=superuser), user=superuser, wait=True)
    invoice = run.documents.get()
    bill_run_email(run=run, user=superuser)
    [message] = document_emails()
    assert message.subject == f"Invoice {invoice.number} from Acme Billing Ltd"
    html = render_to_string(
        "invoices/document_print.html",
        {"document": invoice, "items": invoice.items.all(), "issuer": settings.BILLING_ISSUER},
    )
    assert '<p class="issuer">Acme Billing Ltd<br>1 Main Street, Springfield</p>' in html
