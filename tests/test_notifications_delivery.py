"""The email of a finished run: its content for each outcome, and a delivery
you can trust: sent once after commit, retried with backoff while the mail
server fails, every attempt recorded, never changing the run."""

import datetime
import smtplib
from decimal import Decimal
from urllib.parse import urlparse

import pytest
from django.core import mail
from django.core.mail.backends import locmem
from django.db import OperationalError
from django.utils import timezone
from django_q.models import Schedule as QSchedule
from django_q.scheduler import scheduler

from billruns import generation, services
from billruns.models import RunStatus
from notifications import services as notification_services
from notifications import tasks
from notifications.models import DeliveryStatus, EmailDelivery
from notifications.services import MAX_EMAIL_ATTEMPTS, SEND_TASK, retry_delay
from tests.factories import AccountFactory, ChargeFactory

JAN = datetime.date(2026, 1, 1)


@pytest.fixture
def finish_run(django_capture_on_commit_callbacks, clerk):
    """Create and execute the clerk's run through the real services; its
    email task runs inline after commit (the task queue is synchronous)."""

    def finish(**parameters):
        parameters.setdefault("created_by", clerk)
        with django_capture_on_commit_callbacks(execute=True):
            run = services.bill_run_create(target_date=JAN, enqueue=False, **parameters)
            return services.bill_run_execute(run_id=run.pk)

    return finish


@pytest.fixture
def mail_server_down(monkeypatch):
    """The mail backend raises for the first ``failures['left']`` messages."""
    real_send = locmem.EmailBackend.send_messages
    failures = {"left": 0, "raised": 0}

    def send_messages(self, messages):
        if failures["left"]:
            failures["left"] -= 1
            failures["raised"] += 1
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        return real_send(self, messages)

    monkeypatch.setattr(locmem.EmailBackend, "send_messages", send_messages)
    return failures


def wait_for_retry(django_capture_on_commit_callbacks):
    """Let the backoff pass (the retry schedule and the delivery's due time
    move to the past) and let the task queue's scheduler fire what is due."""
    past = timezone.now() - datetime.timedelta(seconds=1)
    QSchedule.objects.filter(func=SEND_TASK).update(next_run=past)
    EmailDelivery.objects.filter(next_attempt_at__isnull=False).update(next_attempt_at=past)
    with django_capture_on_commit_callbacks(execute=True):
        scheduler()


def run_state(run):
    run.refresh_from_db()
    return (
        run.status,
        run.has_errors,
        run.completed_at,
        run.error_message,
        list(run.events.values_list("from_status", "to_status", "note")),
    )


# --- content -----------------------------------------------------------------


@pytest.mark.django_db
def test_a_completed_run_emails_counts_totals_per_currency_and_a_link(finish_run, settings):
    # given accounts in two currencies
    settings.SITE_URL = "https://billing.example.com"
    ChargeFactory(subscription__account__number="A00000001")
    ChargeFactory(subscription__account__number="A00000002")
    ChargeFactory(subscription__account=AccountFactory(number="A00000003", currency="EUR"))
    # when
    run = finish_run()
    # then
    [message] = mail.outbox
    assert message.subject == f"{run.number} completed"
    assert message.from_email == settings.DEFAULT_FROM_EMAIL
    assert message.to == ["clerk@example.com"]
    link = f"https://billing.example.com/billing/bill-runs/{run.number}/"
    text = message.body
    assert f"Bill run {run.number} completed." in text
    assert "Accounts processed: 3 of 3" in text
    assert "Invoices: 2" not in text and "Invoices: 3" in text
    assert "100.00 EUR" in text and "200.00 USD" in text
    assert "Failures" not in text
    assert f"See the run: {link}" in text
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    assert f'<a href="{link}">' in html
    assert "200.00 USD" in html and "100.00 EUR" in html


@pytest.mark.django_db
def test_the_run_email_writes_totals_as_every_page_does_with_thousands_separated(finish_run):
    ChargeFactory(amount=Decimal("5817.72"), subscription__account__currency="CAD")
    ChargeFactory(amount=Decimal("-1234567.89"), subscription__account__currency="EUR")

    finish_run()

    [message] = mail.outbox
    [(html, _)] = message.alternatives
    for body in (message.body, html):
        assert "5,817.72 CAD" in body
        assert "-1,234,567.89 EUR" in body
        assert "CAD 5817.72" not in body and "5817.72 CAD" not in body


def test_the_sender_defaults_to_the_demo_sender_on_a_site_without_a_domain_name(settings):
    # the tests' site is the demo's 127.0.0.1; a domain's sender is in tests/test_settings.py
    assert urlparse(settings.SITE_URL).hostname == "127.0.0.1"
    assert settings.DEFAULT_FROM_EMAIL == "Billing demo <billing-demo@example.com>"


@pytest.mark.django_db
def test_the_sender_is_the_default_from_email_setting(finish_run, settings):
    settings.DEFAULT_FROM_EMAIL = "Billing <billing@example.org>"
    ChargeFactory(subscription__account__number="A00000001")
    finish_run()
    assert mail.outbox[0].from_email == "Billing <billing@example.org>"


@pytest.mark.django_db
def test_a_run_with_25_failures_lists_the_first_20_and_and_5_more(finish_run):
    # given one billable account and 25 without a bill-to contact
    ChargeFactory(subscription__account__number="A00000001")
    for n in range(2, 27):
        ChargeFactory(subscription__account=AccountFactory(number=f"A{n:08d}", bill_to_email=""))
    # when
    run = finish_run()
    # then
    [message] = mail.outbox
    assert message.subject == f"{run.number} completed with errors"
    text = message.body
    html = message.alternatives[0][0]
    assert "Accounts failed: 25" in text
    for body in (text, html):
        for n in range(2, 22):
            assert f"A{n:08d}: Bill-to contact is missing" in body
        for n in range(22, 27):
            assert f"A{n:08d}" not in body
        assert "and 5 more" in body
    assert text.count("Bill-to contact is missing") == 20


@pytest.mark.django_db
def test_a_run_with_exactly_20_failures_lists_them_all_and_no_more(finish_run):
    for n in range(1, 21):
        ChargeFactory(subscription__account=AccountFactory(number=f"A{n:08d}", bill_to_email=""))
    finish_run()
    text = mail.outbox[0].body
    assert text.count("Bill-to contact is missing") == 20
    assert "more" not in text


@pytest.mark.django_db
def test_a_run_in_error_emails_failed_with_the_reason(finish_run, monkeypatch):
    # given every chunk hits a database error
    ChargeFactory(subscription__account__number="A00000001")

    def process_chunk(chunk_id, *, cluster=""):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(generation, "process_chunk", process_chunk)
    # when
    run = finish_run()
    # then
    assert run.status == RunStatus.ERROR
    [message] = mail.outbox
    assert message.subject == f"{run.number} failed"
    assert "server closed the connection unexpectedly" in message.body
    assert "server closed the connection unexpectedly" in message.alternatives[0][0]
    assert EmailDelivery.objects.get().outcome == "failed"


# --- delivery ----------------------------------------------------------------


@pytest.mark.django_db
def test_a_mail_server_failing_twice_then_recovering_sends_exactly_one_email(
    finish_run, mail_server_down, django_capture_on_commit_callbacks
):
    # given
    ChargeFactory(subscription__account__number="A00000001")
    mail_server_down["left"] = 2
    # when the run ends, the first attempt fails
    before = timezone.now()
    run = finish_run()
    # then the attempt is recorded and a retry is scheduled after the backoff
    delivery = EmailDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 1)
    assert delivery.last_error == "SMTPServerDisconnected: Connection unexpectedly closed"
    assert delivery.next_attempt_at >= before + retry_delay(1)
    retry = QSchedule.objects.get(func=SEND_TASK)
    assert (retry.schedule_type, retry.next_run) == (QSchedule.ONCE, delivery.next_attempt_at)
    assert mail.outbox == []
    # when the scheduler fires the retry before the server is back
    wait_for_retry(django_capture_on_commit_callbacks)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 2)
    assert delivery.next_attempt_at - delivery.last_attempt_at >= retry_delay(2)
    # and again once it is back
    wait_for_retry(django_capture_on_commit_callbacks)
    # then
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (DeliveryStatus.SENT, 3, "")
    assert delivery.sent_at is not None
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == f"{run.number} completed"
    assert mail_server_down["raised"] == 2
    assert not QSchedule.objects.filter(func=SEND_TASK).exists()


@pytest.mark.django_db
def test_a_mail_server_that_never_recovers_fails_the_delivery_after_the_last_attempt(
    finish_run, mail_server_down, django_capture_on_commit_callbacks
):
    # given
    ChargeFactory(subscription__account__number="A00000001")
    mail_server_down["left"] = 1000
    run = finish_run()
    # when every retry fires
    for _ in range(MAX_EMAIL_ATTEMPTS + 3):
        wait_for_retry(django_capture_on_commit_callbacks)
    # then
    delivery = EmailDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, MAX_EMAIL_ATTEMPTS)
    assert delivery.next_attempt_at is None
    assert mail_server_down["raised"] == MAX_EMAIL_ATTEMPTS
    assert not QSchedule.objects.filter(func=SEND_TASK).exists()
    assert mail.outbox == []
    assert run.status == RunStatus.COMPLETED


def test_the_backoff_doubles_and_is_capped_at_an_hour():
    delays = [retry_delay(attempt) for attempt in range(1, MAX_EMAIL_ATTEMPTS)]
    assert [int(delay.total_seconds() // 60) for delay in delays] == [1, 2, 4, 8, 16, 32, 60]


@pytest.mark.django_db
def test_a_mail_failure_never_changes_the_run(finish_run, mail_server_down, monkeypatch):
    # given a run finished with the mail server up, and its state
    ChargeFactory(subscription__account__number="A00000001")
    monkeypatch.setattr(notification_services, "async_task", lambda *args, **kwargs: None)
    run = finish_run()
    before = run_state(run)
    mail_server_down["left"] = 1000
    # when the send fails
    tasks.send_run_email(EmailDelivery.objects.get().pk)
    # then
    assert EmailDelivery.objects.get().status == DeliveryStatus.PENDING
    assert run_state(run) == before


@pytest.mark.django_db
def test_a_broken_mail_setup_does_not_break_the_run(finish_run, monkeypatch):
    # given sending raises something that is not a mail server error
    ChargeFactory(subscription__account__number="A00000001")

    def broken(*args, **kwargs):
        raise RuntimeError("template missing")

    monkeypatch.setattr(notification_services, "build_run_email", broken)
    # when
    run = finish_run()
    # then the run completed and the attempt is recorded for a retry
    assert run.status == RunStatus.COMPLETED
    delivery = EmailDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        DeliveryStatus.PENDING,
        1,
        "RuntimeError: template missing",
    )


@pytest.fixture
def queue_lost(monkeypatch):
    """The queue loses every message sent at the end of a run."""
    monkeypatch.setattr(notification_services, "async_task", lambda *args, **kwargs: None)


@pytest.mark.django_db
def test_the_send_task_delivered_twice_sends_once(finish_run, queue_lost):
    # given
    ChargeFactory(subscription__account__number="A00000001")
    finish_run()
    delivery = EmailDelivery.objects.get()
    # when
    tasks.send_run_email(delivery.pk)
    tasks.send_run_email(delivery.pk)
    # then
    assert len(mail.outbox) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 1)


@pytest.mark.django_db
def test_a_send_task_finds_a_delivery_another_worker_is_sending_and_leaves_it(
    finish_run, queue_lost
):
    # given another worker claimed the delivery a moment ago
    ChargeFactory(subscription__account__number="A00000001")
    finish_run()
    EmailDelivery.objects.update(
        status=DeliveryStatus.SENDING, attempts=1, last_attempt_at=timezone.now()
    )
    # when
    tasks.send_run_email(EmailDelivery.objects.get().pk)
    # then
    assert mail.outbox == []
    assert EmailDelivery.objects.get().attempts == 1


@pytest.mark.django_db
def test_a_send_task_before_the_retry_time_waits_for_the_retry(finish_run, queue_lost):
    ChargeFactory(subscription__account__number="A00000001")
    finish_run()
    later = timezone.now() + datetime.timedelta(minutes=5)
    EmailDelivery.objects.update(attempts=1, next_attempt_at=later)
    tasks.send_run_email(EmailDelivery.objects.get().pk)
    assert mail.outbox == []
    assert EmailDelivery.objects.get().attempts == 1


@pytest.mark.django_db
def test_the_resender_sends_a_delivery_whose_task_was_lost(finish_run, monkeypatch):
    # given the queue lost the send task of a run that ended three minutes ago
    ChargeFactory(subscription__account__number="A00000001")
    with monkeypatch.context() as lost:
        lost.setattr(notification_services, "async_task", lambda *args, **kwargs: None)
        finish_run()
    EmailDelivery.objects.update(created_at=timezone.now() - datetime.timedelta(minutes=3))
    # when the periodic re-sender runs
    tasks.resend_pending_emails()
    # then
    assert len(mail.outbox) == 1
    assert EmailDelivery.objects.get().status == DeliveryStatus.SENT


@pytest.mark.django_db
def test_the_resender_leaves_fresh_and_finished_deliveries_alone(finish_run, monkeypatch):
    ChargeFactory(subscription__account__number="A00000001")
    with monkeypatch.context() as lost:
        lost.setattr(notification_services, "async_task", lambda *args, **kwargs: None)
        finish_run()
    queued = notification_services.email_deliveries_resend_due()
    assert queued == []
    EmailDelivery.objects.update(
        status=DeliveryStatus.SENT, created_at=timezone.now() - datetime.timedelta(hours=1)
    )
    assert notification_services.email_deliveries_resend_due() == []


@pytest.mark.django_db
def test_the_resender_takes_up_a_delivery_whose_worker_died_while_sending(finish_run, queue_lost):
    # given a worker claimed the delivery long ago and never finished
    ChargeFactory(subscription__account__number="A00000001")
    finish_run()
    long_ago = timezone.now() - notification_services.SENDING_LEASE - datetime.timedelta(minutes=1)
    EmailDelivery.objects.update(
        status=DeliveryStatus.SENDING, attempts=1, last_attempt_at=long_ago
    )
    # when
    queued = notification_services.email_deliveries_resend_due()
    for delivery_id in queued:
        tasks.send_run_email(delivery_id)
    # then
    assert len(mail.outbox) == 1
    delivery = EmailDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 2)


@pytest.mark.django_db
def test_the_resender_runs_every_five_minutes():
    schedule = QSchedule.objects.get(func="notifications.tasks.resend_pending_emails")
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (
        QSchedule.MINUTES,
        5,
        -1,
    )
