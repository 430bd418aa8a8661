"""The bill run status table of BILLING_RULES.md, one test per transition.

Every action (post, cancel, delete, retry) in every status is either allowed,
with its outcome, or refused with a message naming the run, its status and
the statuses that allow the action, and nothing changes. Every status change
writes an event (from, to, who, when).
"""

import datetime
import itertools
from decimal import Decimal

import pytest

from billruns import services
from billruns.models import (
    ALLOWED_ACTIONS,
    Action,
    BillRun,
    BillRunEvent,
    BillRunFailure,
    RunStatus,
)
from billruns.services import BillRunActionRefused
from customers.models import Charge
from invoices import sequences
from invoices.models import Document, DocumentItem, DocumentStatus, DocumentType
from tests.factories import AccountFactory, ChargeFactory

TARGET = datetime.date(2026, 1, 1)
_document_numbers = itertools.count(1)

ACTIONS = [Action.POST, Action.CANCEL, Action.DELETE, Action.RETRY]

# What the rules allow, written out again here (not read from ALLOWED_ACTIONS)
# so that a change of the table has to change this test too.
ALLOWED = {
    (RunStatus.PENDING, Action.CANCEL),
    (RunStatus.COMPLETED, Action.POST),
    (RunStatus.COMPLETED, Action.CANCEL),
    (RunStatus.COMPLETED, Action.RETRY),
    (RunStatus.POSTED, Action.RETRY),
    (RunStatus.ERROR, Action.DELETE),
    (RunStatus.CANCELED, Action.DELETE),
}
REFUSED = [
    (status, action)
    for status in RunStatus
    for action in ACTIONS
    if (status, action) not in ALLOWED
]
ALLOWED_STATUSES = {
    Action.POST: ["Completed"],
    Action.CANCEL: ["Pending", "Completed"],
    Action.DELETE: ["Error", "Canceled"],
    Action.RETRY: ["Completed", "Posted"],
}

DOCUMENT_STATUS_OF_RUN = {
    RunStatus.PROCESSING: DocumentStatus.DRAFT,
    RunStatus.COMPLETED: DocumentStatus.DRAFT,
    RunStatus.ERROR: DocumentStatus.CANCELED,
    RunStatus.POST_IN_PROGRESS: DocumentStatus.DRAFT,
    RunStatus.POSTED: DocumentStatus.POSTED,
    RunStatus.CANCEL_IN_PROGRESS: DocumentStatus.DRAFT,
    RunStatus.CANCELED: DocumentStatus.CANCELED,
}


def make_run(status):
    """A run row in ``status`` as the engine would have left it: a document
    (but none while Pending) with one billed item, a failure, and one event."""
    run = BillRun.objects.create(
        number=sequences.allocate("BR")[0],
        status=status,
        target_date=TARGET,
        invoice_date=TARGET,
    )
    BillRunEvent.objects.create(bill_run=run, from_status="", to_status=status, at=run.created_at)
    if status == RunStatus.PENDING:
        return run
    charge = ChargeFactory()
    account = charge.subscription.account
    document_status = DOCUMENT_STATUS_OF_RUN[status]
    document = Document.objects.create(
        document_type=DocumentType.INVOICE,
        number=f"INV9{next(_document_numbers):07d}",
        account=account,
        bill_run=run,
        status=document_status,
        currency="USD",
        amount=Decimal("100.00"),
        balance=Decimal("100.00"),
        invoice_date=TARGET,
        due_date=TARGET + datetime.timedelta(days=30),
        posted_at=run.created_at if document_status == DocumentStatus.POSTED else None,
    )
    DocumentItem.objects.create(
        document=document,
        charge=charge,
        subscription=charge.subscription,
        charge_name=charge.name,
        service_start=TARGET,
        service_end=datetime.date(2026, 1, 31),
        amount=Decimal("100.00"),
        document_canceled=document_status == DocumentStatus.CANCELED,
    )
    if document_status != DocumentStatus.CANCELED:
        charge.charged_through_date = datetime.date(2026, 2, 1)
        charge.save()
    BillRunFailure.objects.create(
        bill_run=run, account=AccountFactory(bill_to_email=""), reason="Bill-to contact is missing"
    )
    return run


def do(action, run, user):
    if action == Action.POST:
        return services.bill_run_post(run=run, user=user, wait=True)
    if action == Action.CANCEL:
        return services.bill_run_cancel(run=run, user=user, wait=True)
    if action == Action.DELETE:
        return services.bill_run_delete(run=run, user=user)
    return services.bill_run_retry(run=run, user=user, wait=True)


def snapshot(run):
    return {
        "runs": list(BillRun.objects.order_by("id").values_list("number", "status")),
        "events": BillRunEvent.objects.count(),
        "documents": list(Document.objects.order_by("id").values_list("number", "status")),
        "items": list(DocumentItem.objects.order_by("id").values_list("id", "document_canceled")),
        "charged_through": list(
            Charge.objects.order_by("id").values_list("id", "charged_through_date")
        ),
    }


def run_through_services(**parameters):
    run = services.bill_run_create(target_date=TARGET, enqueue=False, **parameters)
    return services.bill_run_execute(run_id=run.pk)


def history(run):
    return [
        (event.from_status, event.to_status, event.user)
        for event in BillRunEvent.objects.filter(bill_run=run).order_by("at", "id")
    ]


# --- the table itself -------------------------------------------------------


def test_the_transition_table_is_the_one_of_the_rules():
    # given / when
    table = {
        (status, action)
        for status, actions in ALLOWED_ACTIONS.items()
        for action in actions
        if action in ACTIONS
    }
    # then
    assert table == ALLOWED


# --- refused: every other action in every status -----------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("status", "action"), REFUSED, ids=lambda v: str(v))
def test_an_action_the_status_does_not_allow_is_refused_and_changes_nothing(status, action, clerk):
    # given
    run = make_run(status)
    before = snapshot(run)
    # when
    with pytest.raises(BillRunActionRefused) as refused:
        do(action, run, clerk)
    # then
    message = str(refused.value)
    assert run.number in message
    assert RunStatus(status).label in message
    for allowed in ALLOWED_STATUSES[action]:
        assert allowed in message
    assert snapshot(run) == before


@pytest.mark.django_db
@pytest.mark.parametrize("status", [RunStatus.COMPLETED, RunStatus.POSTED])
def test_retrying_a_run_without_failures_is_refused(status, clerk):
    # given
    run = make_run(status)
    run.failures.all().delete()
    before = snapshot(run)
    # when
    with pytest.raises(BillRunActionRefused) as refused:
        services.bill_run_retry(run=run, user=clerk)
    # then
    assert (
        str(refused.value)
        == f"{run.number} is {run.get_status_display()} and has no failed accounts to retry."
    )
    assert snapshot(run) == before


# --- allowed: one test per transition ----------------------------------------


@pytest.mark.django_db
def test_canceling_a_pending_run_cancels_it_with_nothing_generated(clerk):
    # given
    run = services.bill_run_create(target_date=TARGET, enqueue=False)
    # when
    services.bill_run_cancel(run=run, user=clerk)
    # then
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELED
    assert run.canceled_by == clerk and run.canceled_at is not None
    assert history(run) == [
        ("", RunStatus.PENDING, None),
        (RunStatus.PENDING, RunStatus.CANCELED, clerk),
    ]
    assert not run.documents.exists()


@pytest.mark.django_db
def test_a_canceled_pending_run_is_never_started():
    # given
    ChargeFactory()
    run = services.bill_run_create(target_date=TARGET, enqueue=False)
    services.bill_run_cancel(run=run, user=None)
    # when
    services.bill_run_execute(run_id=run.pk)
    # then
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELED
    assert not Document.objects.exists()


@pytest.mark.django_db
def test_starting_a_pending_run_makes_it_processing():
    # given
    ChargeFactory()
    run = services.bill_run_create(target_date=TARGET, enqueue=False)
    # when
    chunk_ids = services.bill_run_start(run_id=run.pk, enqueue_chunks=False)
    # then
    run.refresh_from_db()
    assert run.status == RunStatus.PROCESSING
    assert run.accounts_selected == 1 and len(chunk_ids) == 1
    assert history(run)[-1] == (RunStatus.PENDING, RunStatus.PROCESSING, None)


@pytest.mark.django_db
def test_finishing_a_processing_run_whose_chunks_are_done_completes_it():
    # given
    ChargeFactory()
    run = services.bill_run_create(target_date=TARGET, enqueue=False)
    [chunk_id] = services.bill_run_start(run_id=run.pk, enqueue_chunks=False)
    services.bill_run_process_chunk(chunk_id=chunk_id)
    # when
    services.bill_run_finish_if_done(run_id=run.pk)
    # then
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert (run.invoices_count, run.totals) == (1, {"USD": "100.00"})
    assert history(run)[-1] == (RunStatus.PROCESSING, RunStatus.COMPLETED, None)


@pytest.mark.django_db
def test_failing_a_processing_run_puts_it_in_error():
    # given
    run = services.bill_run_create(target_date=TARGET, enqueue=False)
    services.bill_run_start(run_id=run.pk, enqueue_chunks=False)
    # when
    services.bill_run_fail(run_id=run.pk, message="The selection could not be evaluated")
    # then
    run.refresh_from_db()
    assert run.status == RunStatus.ERROR
    assert run.error_message == "The selection could not be evaluated"
    assert history(run)[-1] == (RunStatus.PROCESSING, RunStatus.ERROR, None)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "status",
    [s for s in RunStatus if s not in (RunStatus.PENDING, RunStatus.PROCESSING)],
)
def test_failing_a_run_that_is_no_longer_running_changes_nothing(status):
    # given
    run = make_run(status)
    before = snapshot(run)
    # when
    services.bill_run_fail(run_id=run.pk, message="late")
    # then
    assert snapshot(run) == before


@pytest.mark.django_db
@pytest.mark.parametrize("status", [s for s in RunStatus if s != RunStatus.PENDING])
def test_starting_a_run_that_is_not_pending_changes_nothing(status):
    # given
    run = make_run(status)
    before = snapshot(run)
    # when
    services.bill_run_start(run_id=run.pk, enqueue_chunks=False)
    # then
    assert snapshot(run) == before


@pytest.mark.django_db
def test_posting_a_completed_run_posts_its_draft_invoices(clerk):
    # given
    ChargeFactory()
    run = run_through_services()
    # when
    services.bill_run_post(run=run, user=clerk, wait=True)
    # then
    run.refresh_from_db()
    assert run.status == RunStatus.POSTED
    assert run.posted_by == clerk and run.posted_at is not None
    [document] = run.documents.all()
    assert document.status == DocumentStatus.POSTED
    assert document.posted_by == clerk


@pytest.mark.django_db
def test_posting_without_wait_leaves_the_run_post_in_progress_for_the_queue(
    clerk, django_capture_on_commit_callbacks
):
    # given
    ChargeFactory()
    run = run_through_services()
    # when
    with django_capture_on_commit_callbacks(execute=False) as queued:
        returned = services.bill_run_post(run=run, user=clerk)
    # then
    assert returned.status == RunStatus.POST_IN_PROGRESS
    assert len(queued) == 1
    # and when the queue runs the task
    queued[0]()
    run.refresh_from_db()
    assert run.status == RunStatus.POSTED


@pytest.mark.django_db
def test_canceling_a_completed_run_cancels_its_documents(clerk):
    # given
    charge = ChargeFactory()
    run = run_through_services()
    # when
    services.bill_run_cancel(run=run, user=clerk)
    # then
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELED
    assert run.canceled_by == clerk
    assert list(run.documents.values_list("status", flat=True)) == [DocumentStatus.CANCELED]
    charge.refresh_from_db()
    assert charge.charged_through_date is None


@pytest.mark.django_db
@pytest.mark.parametrize("status", [RunStatus.COMPLETED, RunStatus.POSTED])
def test_retrying_a_run_with_failures_makes_a_new_run_for_its_failed_accounts(status, clerk):
    # given
    run = make_run(status)
    [failed_account_id] = run.failures.values_list("account_id", flat=True)
    # when
    retry = services.bill_run_retry(run=run, user=clerk, wait=True)
    # then
    assert retry.pk != run.pk
    assert retry.retry_of == run
    assert retry.status == RunStatus.COMPLETED
    assert retry.created_by == clerk
    assert retry.accounts_processed == 1
    assert list(retry.failures.values_list("account_id", flat=True)) == [failed_account_id]
    run.refresh_from_db()
    assert run.status == status


@pytest.mark.django_db
@pytest.mark.parametrize("status", [RunStatus.ERROR, RunStatus.CANCELED])
def test_deleting_a_run_removes_it_and_its_canceled_documents(status, clerk):
    # given
    run = make_run(status)
    keep = make_run(RunStatus.COMPLETED)
    # when
    services.bill_run_delete(run=run, user=clerk)
    # then
    assert list(BillRun.objects.values_list("pk", flat=True)) == [keep.pk]
    assert list(Document.objects.values_list("bill_run_id", flat=True)) == [keep.pk]
    assert not BillRunEvent.objects.filter(bill_run_id=run.pk).exists()
    assert not BillRunFailure.objects.filter(bill_run_id=run.pk).exists()


# --- the history of a run ----------------------------------------------------


@pytest.mark.django_db
def test_a_posted_run_has_one_event_per_status_change(clerk):
    # given
    ChargeFactory()
    started = datetime.datetime.now(datetime.UTC)
    run = services.bill_run_create(target_date=TARGET, created_by=clerk, enqueue=False)
    services.bill_run_execute(run_id=run.pk)
    # when
    services.bill_run_post(run=run, user=clerk, wait=True)
    # then
    assert history(run) == [
        ("", RunStatus.PENDING, clerk),
        (RunStatus.PENDING, RunStatus.PROCESSING, None),
        (RunStatus.PROCESSING, RunStatus.COMPLETED, None),
        (RunStatus.COMPLETED, RunStatus.POST_IN_PROGRESS, clerk),
        (RunStatus.POST_IN_PROGRESS, RunStatus.POSTED, clerk),
    ]
    times = [event.at for event in run.events.order_by("id")]
    assert times == sorted(times)
    assert all(started <= at <= datetime.datetime.now(datetime.UTC) for at in times)


@pytest.mark.django_db
def test_a_canceled_run_has_one_event_per_status_change(clerk):
    # given
    ChargeFactory()
    run = run_through_services(created_by=clerk)
    # when
    services.bill_run_cancel(run=run, user=clerk)
    # then
    assert history(run) == [
        ("", RunStatus.PENDING, clerk),
        (RunStatus.PENDING, RunStatus.PROCESSING, None),
        (RunStatus.PROCESSING, RunStatus.COMPLETED, None),
        (RunStatus.COMPLETED, RunStatus.CANCEL_IN_PROGRESS, clerk),
        (RunStatus.CANCEL_IN_PROGRESS, RunStatus.CANCELED, clerk),
    ]


@pytest.mark.django_db
def test_the_event_history_matches_the_status_the_run_ends_in(clerk):
    # given
    ChargeFactory()
    run = run_through_services()
    services.bill_run_post(run=run, user=clerk, wait=True)
    # when
    events = list(run.events.order_by("at", "id"))
    # then: each event starts where the one before it ended
    assert [e.from_status for e in events[1:]] == [e.to_status for e in events[:-1]]
    run.refresh_from_db()
    assert events[-1].to_status == run.status


# --- every (status, action) pair of the table, against the services ------------

# The engine's own steps, which tasks deliver at least once: one the table
# does not allow is a late or repeated delivery, and changes nothing quietly.
ENGINE_STEPS = {Action.START, Action.FINISH, Action.FAIL}
# The status each allowed action leaves the run in (RETRY leaves it as it
# was and makes a new run; DELETE leaves no run).
OUTCOME = {
    Action.START: RunStatus.PROCESSING,
    Action.FINISH: RunStatus.COMPLETED,
    Action.FAIL: RunStatus.ERROR,
    Action.POST: RunStatus.POSTED,
    Action.CANCEL: RunStatus.CANCELED,
}
TABLE_PAIRS = [(status, action) for status in RunStatus for action in Action]
ALLOWED_BY_TABLE = [(s, a) for s, a in TABLE_PAIRS if a in ALLOWED_ACTIONS[s]]
REFUSED_BY_TABLE = [(s, a) for s, a in TABLE_PAIRS if a not in ALLOWED_ACTIONS[s]]


def act(action, run, user):
    """The service that does ``action``, as its caller calls it."""
    if action == Action.START:
        return services.bill_run_start(run_id=run.pk, enqueue_chunks=False)
    if action == Action.FINISH:
        return services.bill_run_finish_if_done(run_id=run.pk)
    if action == Action.FAIL:
        return services.bill_run_fail(run_id=run.pk, message="failed in a test")
    return do(action, run, user)


@pytest.mark.django_db
@pytest.mark.parametrize(("status", "action"), ALLOWED_BY_TABLE, ids=lambda v: str(v))
def test_an_action_the_table_allows_is_done(status, action, clerk):
    # given
    run = make_run(status)
    events = BillRunEvent.objects.filter(bill_run_id=run.pk).count()
    # when
    act(action, run, clerk)
    # then
    after = BillRun.objects.filter(pk=run.pk).first()
    if action == Action.DELETE:
        assert after is None
    elif action == Action.RETRY:
        assert after.status == status
        assert after.retries.count() == 1
    else:
        assert after.status == OUTCOME[action]
        assert BillRunEvent.objects.filter(bill_run_id=run.pk).count() > events


@pytest.mark.django_db
@pytest.mark.parametrize(("status", "action"), REFUSED_BY_TABLE, ids=lambda v: str(v))
def test_an_action_the_table_refuses_changes_nothing(status, action, clerk):
    # given
    run = make_run(status)
    before = snapshot(run)
    # when / then
    if action in ENGINE_STEPS:
        act(action, run, clerk)
    else:
        with pytest.raises(BillRunActionRefused, match=run.number):
            act(action, run, clerk)
    assert snapshot(run) == before
