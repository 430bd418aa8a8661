"""Webhooks (docs/webhooks.md): a receiver on a real HTTP server gets each
event once per endpoint, signed as Standard Webhooks; failures and timeouts
are retried with the same webhook-id; the outbox is written in the change's
transaction; posting with no endpoint costs nothing per document; an
endpoint failing for 3 days is disabled and its owner told; private
addresses are refused with DEBUG off."""

import datetime
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import standardwebhooks
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billruns import services as run_services
from billruns.models import RunStatus
from billruns.selectors import run_summary
from billruns.services import execution
from core.deliveries import DeliveryStatus
from invoices import signals as document_signals
from invoices.models import Document, DocumentStatus
from invoices.services import document_post, payment_record
from tests.factories import ChargeFactory
from webhooks import delivery, receivers, services, tasks
from webhooks.models import DeliveryAttempt, DisabledEmail, Endpoint, Event, EventStatus

JAN = datetime.date(2026, 1, 1)
ALL_EVENTS = [
    "bill_run.completed",
    "bill_run.failed",
    "bill_run.posted",
    "bill_run.canceled",
    "document.posted",
    "payment.recorded",
]


class Receiver:
    """A webhook receiver on 127.0.0.1: records every request; answers with
    the next of ``answers`` (a status, or ``"slow"``: waits past the
    client's timeout, then 200), 200 once they run out."""

    def __init__(self):
        self.requests = []
        self.answers = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(
                    {
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body.decode(),
                    }
                )
                answer = receiver.answers.pop(0) if receiver.answers else 200
                if answer == "slow":
                    time.sleep(1.0)
                    answer = 200
                self.send_response(answer)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda *args: None
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/hook"):
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def received(self, path="/hook"):
        return [request for request in self.requests if request["path"] == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.WEBHOOK_TIMEOUT = 0.3
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def clock(monkeypatch):
    """Moves the time every service reads by hand."""
    real_now = timezone.now
    state = {"offset": datetime.timedelta(0)}

    def now():
        return real_now() + state["offset"]

    monkeypatch.setattr(timezone, "now", now)

    def move(delta):
        state["offset"] += delta

    return move


@pytest.fixture
def run_after_commit(django_capture_on_commit_callbacks):
    """Calls ``action`` and runs what it queued after commit (the task queue
    is synchronous in tests: the deliveries happen then)."""

    def run(action, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return action(*args, **kwargs)

    return run


def completed_run(**parameters):
    run = run_services.bill_run_create(target_date=JAN, enqueue=False, **parameters)
    return run_services.bill_run_execute(run_id=run.pk)


def verified(request, secret):
    """The body as the standardwebhooks library accepts it (raises if not)."""
    return standardwebhooks.Webhook(secret).verify(request["body"], request["headers"])


@pytest.mark.django_db
def test_each_event_reaches_each_endpoint_once_signed_as_standard_webhooks(
    receiver, run_after_commit, clerk
):
    # given one endpoint for every event and one for posted documents only
    everything, secret = services.endpoint_create(receiver.url("/all"), ALL_EVENTS, clerk)
    documents_only, documents_secret = services.endpoint_create(
        receiver.url("/documents"), ["document.posted"], clerk
    )
    ChargeFactory.create_batch(2)
    # when a run completes and is posted, a payment is recorded, a second
    # run's document is posted on its own and that run canceled, a third fails
    run = run_after_commit(completed_run, created_by=clerk)
    run = run_after_commit(run_services.bill_run_post, run=run, user=clerk, wait=True)
    invoice = Document.objects.filter(bill_run=run).order_by("id").first()
    run_after_commit(
        payment_record,
        document_id=invoice.pk,
        amount="40.00",
        payment_date=JAN,
        method="bank_transfer",
        reference="wire 7",
        user=clerk,
    )
    ChargeFactory()  # a new account: the second run bills it alone
    second = run_after_commit(completed_run, created_by=clerk)
    single = Document.objects.get(bill_run=second)
    run_after_commit(document_post, document_id=single.pk, user=clerk)
    pending = run_services.bill_run_create(target_date=JAN, enqueue=False)
    run_after_commit(run_services.bill_run_cancel, run=pending, user=clerk)

    # then every request verifies with its endpoint's secret, carries its
    # event's id as webhook-id, and each event arrives once per endpoint
    bodies = [verified(request, secret) for request in receiver.received("/all")]
    for request, body in zip(receiver.received("/all"), bodies, strict=True):
        assert request["headers"]["webhook-id"] == body["id"]
        assert body["id"].startswith("evt_")
    types = [body["type"] for body in bodies]
    assert types == [
        "bill_run.completed",
        "document.posted",
        "document.posted",
        "bill_run.posted",
        "payment.recorded",
        "bill_run.completed",
        "document.posted",
        "bill_run.canceled",
    ]
    assert len({body["id"] for body in bodies}) == len(bodies)
    documents = [verified(request, documents_secret) for request in receiver.received("/documents")]
    assert [body["type"] for body in documents] == ["document.posted"] * 3
    # the same event has the same id at both endpoints
    assert {body["id"] for body in documents} == {
        body["id"] for body in bodies if body["type"] == "document.posted"
    }
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        verified(receiver.received("/documents")[0], secret)
    # and the data is the run as billrun show --json shows it, the document
    # as its --documents entry, the payment with the balance after it
    posted = next(body for body in bodies if body["type"] == "bill_run.posted")
    assert posted["data"] == run_summary(run)
    assert posted["data"]["status"] == RunStatus.POSTED
    first_document = next(body for body in bodies if body["type"] == "document.posted")
    entry = run_summary(run, documents=True)["documents"][0]
    assert first_document["data"] == {**entry, "balance": first_document["data"]["amount"]}
    payment = next(body for body in bodies if body["type"] == "payment.recorded")["data"]
    assert {
        key: payment[key] for key in ("document", "amount", "date", "reference", "balance")
    } == {
        "document": invoice.number,
        "amount": "40.00",
        "date": "2026-01-01",
        "reference": "wire 7",
        "balance": f"{invoice.amount - 40:.2f}",
    }
    assert Event.objects.filter(status=EventStatus.DELIVERED).count() == 11
    assert DeliveryAttempt.objects.count() == 11
    assert {everything.pk, documents_only.pk} == set(
        DeliveryAttempt.objects.values_list("endpoint_id", flat=True)
    )


@pytest.mark.django_db
def test_a_failed_run_is_announced(receiver, run_after_commit, monkeypatch):
    _, secret = services.endpoint_create(receiver.url(), ["bill_run.failed"], None)

    def broken_selection(run):
        raise RuntimeError("no selection today")

    monkeypatch.setattr(execution, "_selected_account_ids", broken_selection)
    ChargeFactory()
    run = run_after_commit(completed_run)
    assert run.status == RunStatus.ERROR
    [request] = receiver.received()
    body = verified(request, secret)
    assert body["type"] == "bill_run.failed"
    assert body["data"]["status"] == "Error"
    assert "no selection today" in body["data"]["error"]


def _paid(run_after_commit, clerk):
    ChargeFactory()
    run = completed_run(created_by=clerk)
    run_services.bill_run_post(run=run, user=clerk, wait=True)
    invoice = Document.objects.get(bill_run=run)
    return run_after_commit(
        payment_record,
        document_id=invoice.pk,
        amount="1.00",
        payment_date=JAN,
        method="card",
        user=clerk,
    )


@pytest.mark.django_db
def test_a_500_then_a_200_is_retried_later_with_the_same_webhook_id(
    receiver, run_after_commit, clerk, clock
):
    # given an endpoint that answers 500 once
    endpoint, secret = services.endpoint_create(receiver.url(), ["payment.recorded"], clerk)
    receiver.answers = [500]
    # when a payment is recorded
    _paid(run_after_commit, clerk)
    # then the first attempt failed and waits for its retry
    [event] = Event.objects.all()
    assert event.status == EventStatus.PENDING and event.attempts == 1
    assert event.next_attempt_at > timezone.now()
    tasks.send_due_webhooks()
    assert len(receiver.received()) == 1  # not due yet
    # and once the delay has passed, the once-a-minute sender delivers it
    clock(delivery.RETRY_DELAYS[0] + datetime.timedelta(seconds=1))
    tasks.send_due_webhooks()
    first, second = receiver.received()
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"] == event.event_id
    assert first["body"] == second["body"]
    verified(second, secret)
    event.refresh_from_db()
    assert event.status == EventStatus.DELIVERED
    assert list(DeliveryAttempt.objects.order_by("id").values_list("status_code", "error")) == [
        (500, "HTTP 500 Internal Server Error"),
        (200, ""),
    ]
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None
    # and a delivered event is never sent again
    clock(datetime.timedelta(hours=1))
    tasks.send_due_webhooks()
    delivery.endpoint_deliver(endpoint_id=endpoint.pk)
    assert len(receiver.received()) == 2


@pytest.mark.django_db
def test_a_timeout_is_recorded_and_retried_with_the_same_webhook_id(
    receiver, run_after_commit, clerk, clock
):
    services.endpoint_create(receiver.url(), ["payment.recorded"], clerk)
    receiver.answers = ["slow"]
    _paid(run_after_commit, clerk)
    [attempt] = DeliveryAttempt.objects.all()
    assert attempt.status_code is None
    assert attempt.error.startswith("Timed out after 0.3 s")
    assert attempt.duration_ms >= 300
    clock(datetime.timedelta(seconds=10))
    tasks.send_due_webhooks()
    time.sleep(0.8)  # the slow answer's thread finishes before the server closes
    first, second = receiver.received()
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"]
    assert Event.objects.get().status == EventStatus.DELIVERED


def test_the_retries_grow_and_last_more_than_24_hours():
    delays = [delivery.retry_delay(n) for n in range(1, delivery.MAX_ATTEMPTS)]
    assert delays == sorted(delays)
    assert (
        sum(delays, datetime.timedelta(0)) > delivery.DISABLE_AFTER > datetime.timedelta(hours=24)
    )
    assert delivery.retry_delay(delivery.MAX_ATTEMPTS) is None


@pytest.mark.django_db
def test_a_rolled_back_change_writes_no_outbox_row_and_sends_nothing(
    receiver, django_capture_on_commit_callbacks, clerk
):
    services.endpoint_create(receiver.url(), ALL_EVENTS, clerk)
    ChargeFactory()
    run = completed_run(created_by=clerk)
    Event.objects.all().delete()
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        run_services.bill_run_post(run=run, user=clerk, wait=True)
        assert Event.objects.count() == 2  # the document and the run, in this transaction
        raise RuntimeError("the change fails after its announcement")
    assert Event.objects.count() == 0
    assert receiver.requests == []


@pytest.mark.django_db
def test_an_announcement_made_twice_writes_one_row_per_endpoint(receiver, clerk):
    services.endpoint_create(receiver.url(), ["bill_run.completed"], clerk)
    ChargeFactory()
    run = completed_run(created_by=clerk)
    receivers.on_bill_run_completed(sender=None, run=run)
    assert Event.objects.count() == 1


def _post_counting_queries(accounts):
    ChargeFactory.create_batch(accounts)
    run = completed_run()
    with CaptureQueriesContext(connection) as queries:
        run_services.bill_run_post(run=run, user=None, wait=True)
    assert Document.objects.filter(bill_run=run, status=DocumentStatus.POSTED).count() == accounts
    return len(queries)


@pytest.mark.django_db
def test_posting_with_no_endpoint_for_documents_writes_nothing_and_costs_no_query_per_document(
    clerk,
):
    # given endpoints that want other events, and a disabled one that wants documents
    services.endpoint_create("https://example.com/runs", ["bill_run.posted"], clerk)
    disabled, _ = services.endpoint_create("https://example.com/docs", ["document.posted"], clerk)
    Endpoint.objects.filter(pk=disabled.pk).update(disabled_at=timezone.now())
    # when runs of 2 and of 12 documents are posted
    few = _post_counting_queries(2)
    many = _post_counting_queries(12)
    # then they take the same queries, and nothing is written for documents
    assert many == few
    assert not Event.objects.filter(event_type="document.posted").exists()
    # and the announcement costs one query per posting batch, not per document
    document_signals.documents_posted.disconnect(dispatch_uid="webhooks.on_documents_posted")
    try:
        without = _post_counting_queries(12)
    finally:
        document_signals.documents_posted.connect(
            receivers.on_documents_posted, dispatch_uid="webhooks.on_documents_posted"
        )
    assert many == without + 1


@pytest.mark.django_db
def test_an_endpoint_failing_for_3_days_is_disabled_and_its_owner_emailed(
    receiver, run_after_commit, clerk, clock, django_capture_on_commit_callbacks
):
    # given an endpoint that always answers 500
    endpoint, _ = services.endpoint_create(receiver.url(), ["payment.recorded"], clerk)
    receiver.answers = [500] * 100
    _paid(run_after_commit, clerk)
    endpoint.refresh_from_db()
    assert endpoint.failing_since is not None and endpoint.disabled_at is None
    # when it is still failing a little under 3 days later, it stays enabled
    clock(delivery.DISABLE_AFTER - datetime.timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        tasks.send_due_webhooks()
    endpoint.refresh_from_db()
    assert endpoint.disabled_at is None
    assert len(receiver.received()) == 2
    # and once it has failed for 3 days straight, it is disabled and its owner told
    clock(datetime.timedelta(hours=11))
    with django_capture_on_commit_callbacks(execute=True):
        tasks.send_due_webhooks()
    endpoint.refresh_from_db()
    assert endpoint.disabled_at is not None
    [email] = mail.outbox
    assert email.to == [clerk.email]
    assert endpoint.url in email.subject and "disabled" in email.body
    assert DisabledEmail.objects.get().status == DeliveryStatus.SENT
    # and nothing more is sent to it; the event waits, pending
    clock(datetime.timedelta(days=1))
    with django_capture_on_commit_callbacks(execute=True):
        tasks.send_due_webhooks()
    assert len(receiver.received()) == 3
    assert DeliveryAttempt.objects.count() == 3
    assert Event.objects.get().status == EventStatus.PENDING
    # until an operator enables it again
    receiver.answers = []
    with django_capture_on_commit_callbacks(execute=True):
        services.endpoint_enable(endpoint)
    assert Event.objects.get().status == EventStatus.DELIVERED


@pytest.mark.django_db
def test_private_addresses_are_refused_with_debug_off(settings, receiver, run_after_commit, clerk):
    settings.DEBUG = False
    settings.WEBHOOK_ALLOW_PRIVATE = False
    for url, what in [
        ("http://127.0.0.1:8000/hook", "loopback"),
        ("http://localhost/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("https://192.168.0.10/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[::1]/hook", "loopback"),
        ("http://[::ffff:10.0.0.1]/hook", "private"),
    ]:
        with pytest.raises(ValidationError) as refused:
            services.endpoint_create(url, ["payment.recorded"], clerk)
        assert what in refused.value.message_dict["url"][0], url
        assert "WEBHOOK_ALLOW_PRIVATE" in refused.value.message_dict["url"][0]
    assert not Endpoint.objects.exists()
    # and an endpoint allowed when it was made is refused at delivery
    settings.WEBHOOK_ALLOW_PRIVATE = True
    services.endpoint_create(receiver.url(), ["payment.recorded"], clerk)
    settings.WEBHOOK_ALLOW_PRIVATE = False
    _paid(run_after_commit, clerk)
    assert receiver.requests == []
    [attempt] = DeliveryAttempt.objects.all()
    assert attempt.status_code is None and "loopback" in attempt.error
    # and WEBHOOK_ALLOW_PRIVATE lets them through
    settings.WEBHOOK_ALLOW_PRIVATE = True
    endpoint, _ = services.endpoint_create("http://10.1.2.3/hook", ["payment.recorded"], clerk)
    assert endpoint.url == "http://10.1.2.3/hook"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "events", "field", "message"),
    [
        ("ftp://example.com/hook", ["payment.recorded"], "url", "not a valid http"),
        ("not a url", ["payment.recorded"], "url", "not a valid http"),
        ("https://user:pw@example.com/", ["payment.recorded"], "url", "user name or password"),
        ("", ["payment.recorded"], "url", "Give the endpoint's URL"),
        ("https://example.com/hook", [], "events", "one or more event types"),
        ("https://example.com/hook", ["invoice.paid"], "events", "'invoice.paid' is not an event"),
        ("https://example.com/hook", "payment.recorded", "events", "Give a list"),
    ],
)
def test_bad_endpoints_are_refused_with_a_clear_message(url, events, field, message, clerk):
    with pytest.raises(ValidationError) as refused:
        services.endpoint_create(url, events, clerk)
    assert message in refused.value.message_dict[field][0]
    assert not Endpoint.objects.exists()


@pytest.mark.django_db
def test_an_endpoint_has_a_standard_webhooks_secret_and_can_be_deleted(clerk):
    endpoint, secret = services.endpoint_create(
        "https://example.com/hook",
        ["payment.recorded", "bill_run.posted", "payment.recorded"],
        clerk,
    )
    assert secret.startswith("whsec_") and endpoint.secret == secret
    assert len(standardwebhooks.Webhook(secret)._whsecret) == 24
    assert endpoint.events == ["bill_run.posted", "payment.recorded"]
    assert (
        services.endpoint_create("https://example.com/b", ["bill_run.posted"], clerk)[1] != secret
    )
    services.endpoint_delete(endpoint)
    assert not Endpoint.objects.filter(pk=endpoint.pk).exists()


@pytest.mark.django_db
def test_send_again_resends_with_the_same_id(receiver, run_after_commit, clerk):
    services.endpoint_create(receiver.url(), ["payment.recorded"], clerk)
    _paid(run_after_commit, clerk)
    [event] = Event.objects.all()
    run_after_commit(services.events_send_again, [event])
    first, second = receiver.received()
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"] == event.event_id
    assert json.loads(second["body"])["id"] == event.event_id


@pytest.mark.django_db
def test_a_worker_that_died_mid_request_is_replaced_after_its_lease(
    receiver, run_after_commit, clerk, clock
):
    endpoint, _ = services.endpoint_create(receiver.url(), ["payment.recorded"], clerk)
    receiver.answers = [500]
    _paid(run_after_commit, clerk)
    # a worker claimed the retry and died before recording anything
    clock(datetime.timedelta(minutes=1))
    Event.objects.update(status=EventStatus.SENDING, last_attempt_at=timezone.now())
    tasks.send_due_webhooks()
    delivery.endpoint_deliver(endpoint_id=endpoint.pk)
    assert len(receiver.received()) == 1  # its claim is still fresh
    clock(delivery.SENDING_LEASE + datetime.timedelta(seconds=1))
    tasks.send_due_webhooks()
    assert len(receiver.received()) == 2
    assert Event.objects.get().status == EventStatus.DELIVERED


@pytest.mark.django_db(transaction=True)
def test_no_transaction_is_open_while_the_endpoint_is_called(receiver, superuser, monkeypatch):
    # a superuser: a transactional test flushes the role groups the clerk needs
    services.endpoint_create(receiver.url(), ["payment.recorded"], superuser)
    open_during_call = []
    real_post = delivery._post

    def post(*args):
        open_during_call.append(connection.in_atomic_block)
        return real_post(*args)

    monkeypatch.setattr(delivery, "_post", post)
    _paid(lambda action, *a, **k: action(*a, **k), superuser)
    assert open_during_call == [False]
    assert len(receiver.received()) == 1
    assert Event.objects.get().status == EventStatus.DELIVERED


@pytest.mark.django_db
def test_the_admin_shows_the_secret_once_and_sends_again(
    receiver, run_after_commit, client, superuser
):
    client.force_login(superuser)
    response = client.post(
        "/admin/webhooks/endpoint/add/",
        {"url": receiver.url(), "events": ["payment.recorded"], "owner": superuser.pk},
        follow=True,
    )
    endpoint = Endpoint.objects.get()
    assert endpoint.secret in response.content.decode()
    assert endpoint.events == ["payment.recorded"] and endpoint.owner == superuser
    page = client.get(f"/admin/webhooks/endpoint/{endpoint.pk}/change/").content.decode()
    assert endpoint.secret not in page
    # a refused URL is a form error, and nothing is made
    refused = client.post(
        "/admin/webhooks/endpoint/add/",
        {"url": "ftp://example.com/", "events": ["payment.recorded"]},
    )
    assert "is not a valid http:// or https:// URL" in refused.content.decode()
    assert Endpoint.objects.count() == 1
    # the event list's send again delivers an event again with its id
    _paid(run_after_commit, superuser)
    event = Event.objects.get()
    with_queue = run_after_commit(
        client.post,
        "/admin/webhooks/event/",
        {"action": "send_again", "_selected_action": [event.pk]},
    )
    assert with_queue.status_code == 302
    first, second = receiver.received()
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"] == event.event_id
    assert DeliveryAttempt.objects.count() == 2
    attempts_page = client.get(f"/admin/webhooks/endpoint/{endpoint.pk}/change/").content.decode()
    assert event.event_id in attempts_page and "payment.recorded" in attempts_page
