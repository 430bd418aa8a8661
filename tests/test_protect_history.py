"""Deleting something never erases what a posted document or a run's history
shows (issue 11, item 2's audit of every on_delete): who posted, who ran, the
run a retry retried, the subscriptions a run selected, the run a document
belongs to."""

import datetime

import pytest
from django.db.models import ProtectedError
from django.urls import reverse

from billruns import services
from billruns.models import BillRun, BillRunEvent, RunStatus
from billruns.services import BillRunActionRefused
from customers.models import Subscription
from invoices.models import Document, DocumentStatus
from tests.factories import AccountFactory, ChargeFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db

JAN = datetime.date(2026, 1, 1)


def run_to_end(**parameters):
    run = services.bill_run_create(target_date=JAN, enqueue=False, **parameters)
    return services.bill_run_execute(run_id=run.pk)


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


def test_a_user_who_posted_or_ran_cannot_be_deleted_in_the_admin(admin_client, clerk):
    ChargeFactory()
    run = run_to_end(created_by=clerk)
    services.bill_run_post(run=run, user=clerk, wait=True)
    url = reverse("admin:auth_user_delete", args=[clerk.pk])

    response = admin_client.post(url, {"post": "yes"})

    assert response.status_code == 200
    assert b"Cannot delete user" in response.content
    assert b"would require deleting the following protected related objects" in response.content
    run.refresh_from_db()
    assert run.created_by == clerk and run.posted_by == clerk
    assert Document.objects.get(bill_run=run).posted_by == clerk
    assert BillRunEvent.objects.filter(bill_run=run, user=clerk).exists()


def test_a_run_that_was_retried_cannot_be_deleted(clerk):
    ChargeFactory()
    AccountFactory(bill_to_email="")
    run = run_to_end()
    assert run.accounts_failed == 1
    retry = services.bill_run_retry(run=run, user=clerk, wait=True)
    services.bill_run_cancel(run=run, user=clerk)
    services.bill_run_cancel(run=retry, user=clerk)

    with pytest.raises(BillRunActionRefused, match=f"{retry.number} retried it"):
        services.bill_run_delete(run=run, user=clerk)

    retry.refresh_from_db()
    assert retry.retry_of_id == run.pk
    assert BillRun.objects.filter(pk=run.pk).exists()


def test_a_canceled_run_is_still_deleted_with_its_canceled_documents(clerk):
    ChargeFactory()
    run = run_to_end()
    services.bill_run_cancel(run=run, user=clerk)

    services.bill_run_delete(run=run, user=clerk)

    assert not BillRun.objects.filter(pk=run.pk).exists()
    assert not Document.objects.exists()


def test_a_run_holding_documents_cannot_be_deleted_around_the_service():
    ChargeFactory()
    run = run_to_end()
    Document.objects.filter(bill_run=run).update(status=DocumentStatus.POSTED)

    with pytest.raises(ProtectedError):
        run.delete()

    assert Document.objects.filter(bill_run=run).exists()


def test_a_subscription_a_run_selected_cannot_be_deleted_in_the_admin(admin_client):
    # A subscription without charges: the run bills nothing of it, but its
    # details name it.
    subscription = SubscriptionFactory()
    run = run_to_end(account=subscription.account, subscriptions=[subscription.number])
    assert run.status == RunStatus.COMPLETED
    url = reverse("admin:customers_subscription_delete", args=[subscription.pk])

    response = admin_client.post(url, {"post": "yes"})

    assert response.status_code == 200
    assert b"Cannot delete subscription" in response.content
    assert Subscription.objects.filter(pk=subscription.pk).exists()
    assert run.selection_label == (
        f"Account {subscription.account.number}, subscriptions {subscription.number}"
    )
