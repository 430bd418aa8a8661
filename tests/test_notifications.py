"""Who is told that a run ended, and the in-app notices (BILLING_RULES.md,
"Notifications"): the creator of an ad hoc run, the owner of a scheduled
run's schedule; one notice and one email per outcome; the header's bell."""

import datetime

import pytest
from django.core import mail

from billruns import services
from billruns.models import Schedule
from billruns.signals import bill_run_finished
from notifications.models import DeliveryStatus, EmailDelivery, Outcome, RunNotification
from tests.factories import ChargeFactory

JAN = datetime.date(2026, 1, 1)


@pytest.fixture
def finish_run(django_capture_on_commit_callbacks):
    """Create and execute a run through the real services; what the run
    queues after commit (its email) runs too, inline (the test settings
    make the task queue synchronous)."""

    def finish(**parameters):
        with django_capture_on_commit_callbacks(execute=True):
            run = services.bill_run_create(target_date=JAN, enqueue=False, **parameters)
            return services.bill_run_execute(run_id=run.pk)

    return finish


@pytest.fixture
def billable():
    return ChargeFactory(subscription__account__number="A00000001")


# --- who is told -------------------------------------------------------------


@pytest.mark.django_db
def test_an_ad_hoc_run_notifies_the_user_who_created_it(finish_run, billable, clerk):
    # when
    run = finish_run(created_by=clerk)
    # then
    notice = RunNotification.objects.get()
    assert (notice.user, notice.bill_run, notice.outcome) == (clerk, run, Outcome.COMPLETED)
    assert notice.read_at is None
    delivery = EmailDelivery.objects.get()
    assert (delivery.recipient, delivery.to_address, delivery.status, delivery.attempts) == (
        clerk,
        "clerk@example.com",
        DeliveryStatus.SENT,
        1,
    )
    assert [message.to for message in mail.outbox] == [["clerk@example.com"]]


@pytest.mark.django_db
def test_a_scheduled_run_notifies_the_owner_of_its_schedule(
    finish_run, billable, clerk, django_user_model
):
    # given a schedule owned by someone other than whoever created the run
    owner = django_user_model.objects.create_user("owner", "owner@example.com", "pw")
    schedule = Schedule.objects.create(name="Monthly batch 1", owner=owner)
    # when
    run = finish_run(
        created_by=clerk,
        schedule=schedule,
        occurrence=datetime.datetime(2026, 1, 1, 6, tzinfo=datetime.UTC),
    )
    # then
    assert list(RunNotification.objects.values_list("user__username", "bill_run")) == [
        ("owner", run.pk)
    ]
    assert [message.to for message in mail.outbox] == [["owner@example.com"]]


@pytest.mark.django_db
def test_a_run_nobody_created_notifies_nobody(finish_run, billable):
    # when
    finish_run(created_by=None)
    # then
    assert not RunNotification.objects.exists()
    assert not EmailDelivery.objects.exists()
    assert mail.outbox == []


@pytest.mark.django_db
def test_a_creator_without_an_email_address_gets_the_notice_and_a_skipped_delivery(
    finish_run, billable, django_user_model
):
    # given
    user = django_user_model.objects.create_user("noemail", "", "pw")
    # when
    run = finish_run(created_by=user)
    # then
    assert RunNotification.objects.filter(user=user, bill_run=run).exists()
    delivery = EmailDelivery.objects.get()
    assert (delivery.status, delivery.to_address, delivery.attempts) == (
        DeliveryStatus.SKIPPED,
        "",
        0,
    )
    assert delivery.last_error == "noemail has no email address."
    assert mail.outbox == []


@pytest.mark.django_db
def test_a_run_announced_twice_gives_one_notice_and_one_email(
    finish_run, billable, clerk, django_capture_on_commit_callbacks
):
    # given
    run = finish_run(created_by=clerk)
    # when the engine's signal comes again (a redelivered task, a sweeper)
    with django_capture_on_commit_callbacks(execute=True):
        bill_run_finished.send(sender=type(run), run=run)
    # then
    assert RunNotification.objects.count() == 1
    assert EmailDelivery.objects.count() == 1
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_the_email_is_queued_only_after_the_transaction_commits(billable, clerk):
    # given a run finishing inside a transaction that has not committed
    # (pytest-django's test transaction never does)
    run = services.bill_run_create(target_date=JAN, enqueue=False, created_by=clerk)
    # when
    services.bill_run_execute(run_id=run.pk)
    # then the delivery is recorded and waits for the commit
    assert EmailDelivery.objects.get().status == DeliveryStatus.PENDING
    assert mail.outbox == []


# --- the header --------------------------------------------------------------


@pytest.mark.django_db
def test_the_header_shows_the_unread_count_and_links_to_the_latest_notices(
    client, finish_run, billable, clerk
):
    # given two runs that ended, one notice already read
    first = finish_run(created_by=clerk)
    second = finish_run(created_by=clerk)
    RunNotification.objects.filter(bill_run=first).update(
        read_at=datetime.datetime.now(datetime.UTC)
    )
    client.force_login(clerk)
    # when
    html = client.get("/billing/bill-runs/").content.decode()
    # then
    assert 'aria-label="Notifications, 1 unread"' in html
    assert 'data-testid="notifications-unread" aria-hidden="true">1</span>' in html
    for run in (first, second):
        notice = RunNotification.objects.get(bill_run=run)
        assert f'href="/notifications/{notice.pk}/"' in html
        assert run.number in html


@pytest.mark.django_db
def test_the_header_lists_at_most_ten_notices_and_counts_them_all(
    client, finish_run, billable, clerk
):
    # given
    runs = [finish_run(created_by=clerk) for _ in range(12)]
    client.force_login(clerk)
    # when
    html = client.get("/billing/bill-runs/").content.decode()
    # then
    assert 'aria-label="Notifications, 12 unread"' in html
    assert html.count('href="/notifications/') == 10
    newest = RunNotification.objects.get(bill_run=runs[-1])
    oldest = RunNotification.objects.get(bill_run=runs[0])
    assert f'href="/notifications/{newest.pk}/"' in html
    assert f'href="/notifications/{oldest.pk}/"' not in html


@pytest.mark.django_db
def test_a_user_without_notices_sees_the_bell_without_a_count(client, viewer):
    client.force_login(viewer)
    html = client.get("/billing/bill-runs/").content.decode()
    assert 'aria-label="Notifications, 0 unread"' in html
    assert "notifications-unread" not in html
    assert "No notifications yet." in html


@pytest.mark.django_db
def test_opening_a_notice_marks_it_read_and_goes_to_the_run(client, finish_run, billable, clerk):
    # given
    run = finish_run(created_by=clerk)
    notice = RunNotification.objects.get()
    client.force_login(clerk)
    # when
    response = client.get(f"/notifications/{notice.pk}/")
    # then
    assert response.status_code == 302
    assert response["Location"] == f"/billing/bill-runs/{run.number}/"
    notice.refresh_from_db()
    assert notice.read_at is not None
    html = client.get(response["Location"]).content.decode()
    assert 'aria-label="Notifications, 0 unread"' in html


@pytest.mark.django_db
def test_opening_a_notice_again_keeps_the_first_read_time(client, finish_run, billable, clerk):
    finish_run(created_by=clerk)
    notice = RunNotification.objects.get()
    client.force_login(clerk)
    client.get(f"/notifications/{notice.pk}/")
    first_read = RunNotification.objects.get().read_at
    client.get(f"/notifications/{notice.pk}/")
    assert RunNotification.objects.get().read_at == first_read


@pytest.mark.django_db
def test_another_users_notice_is_not_found_and_stays_unread(
    client, finish_run, billable, clerk, viewer
):
    # given
    finish_run(created_by=clerk)
    notice = RunNotification.objects.get()
    client.force_login(viewer)
    # when
    response = client.get(f"/notifications/{notice.pk}/")
    # then
    assert response.status_code == 404
    assert RunNotification.objects.get().read_at is None


@pytest.mark.django_db
def test_opening_a_notice_needs_a_signed_in_user(client, finish_run, billable, clerk):
    finish_run(created_by=clerk)
    notice = RunNotification.objects.get()
    response = client.get(f"/notifications/{notice.pk}/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert RunNotification.objects.get().read_at is None


@pytest.mark.django_db
def test_opening_a_notice_is_a_get(client, finish_run, billable, clerk):
    finish_run(created_by=clerk)
    notice = RunNotification.objects.get()
    client.force_login(clerk)
    assert client.post(f"/notifications/{notice.pk}/").status_code == 405


@pytest.mark.django_db
def test_mark_all_read_reads_the_users_own_notices_only(
    client, finish_run, billable, clerk, viewer
):
    # given: two unread notices of the clerk, one already read, one of the viewer
    first = finish_run(created_by=clerk)
    finish_run(created_by=clerk)
    finish_run(created_by=clerk)
    finish_run(created_by=viewer)
    read_before = datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC)
    RunNotification.objects.filter(bill_run=first).update(read_at=read_before)
    client.force_login(clerk)
    html = client.get("/billing/schedules/").content.decode()
    assert 'data-testid="notifications-mark-all-read"' in html
    assert 'name="next" value="/billing/schedules/"' in html
    # when
    response = client.post("/notifications/read-all/", {"next": "/billing/schedules/"})
    # then: back on the page, every notice of the clerk read, the viewer's not
    assert response.status_code == 302
    assert response["Location"] == "/billing/schedules/"
    assert not RunNotification.objects.filter(user=clerk, read_at__isnull=True).exists()
    assert RunNotification.objects.get(bill_run=first).read_at == read_before
    assert RunNotification.objects.get(user=viewer).read_at is None
    html = client.get(response["Location"]).content.decode()
    assert "2 notifications marked read." in html
    assert 'aria-label="Notifications, 0 unread"' in html
    assert 'data-testid="notifications-mark-all-read"' not in html


@pytest.mark.django_db
def test_mark_all_read_with_nothing_unread_says_so(client, viewer):
    client.force_login(viewer)
    response = client.post("/notifications/read-all/", follow=True)
    assert response.redirect_chain == [("/billing/bill-runs/", 302)]
    assert "No unread notifications." in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "next_url", ["https://evil.example/", "//evil.example/", "billruns:detail", "", "javascript:x"]
)
def test_mark_all_read_goes_back_only_to_a_page_of_this_site(client, viewer, next_url):
    client.force_login(viewer)
    response = client.post("/notifications/read-all/", {"next": next_url})
    assert response.status_code == 302
    assert response["Location"] == "/billing/bill-runs/"


@pytest.mark.django_db
def test_mark_all_read_is_a_post_by_a_signed_in_user(client, finish_run, billable, clerk):
    finish_run(created_by=clerk)
    assert client.post("/notifications/read-all/")["Location"].startswith("/accounts/login/")
    client.force_login(clerk)
    assert client.get("/notifications/read-all/").status_code == 405
    assert RunNotification.objects.get().read_at is None


# --- where deliveries are shown ------------------------------------------------


@pytest.mark.django_db
def test_the_run_page_shows_its_email_deliveries(client, finish_run, billable, clerk, viewer):
    # given
    run = finish_run(created_by=clerk)
    client.force_login(viewer)
    # when
    html = client.get(f"/billing/bill-runs/{run.number}/").content.decode()
    # then
    assert 'data-testid="email-deliveries"' in html
    assert "clerk@example.com" in html
    assert ">Sent</span>" in html


@pytest.mark.django_db
def test_a_run_without_deliveries_shows_no_email_section(client, finish_run, billable, viewer):
    run = finish_run(created_by=None)
    client.force_login(viewer)
    html = client.get(f"/billing/bill-runs/{run.number}/").content.decode()
    assert 'data-testid="email-deliveries"' not in html


@pytest.mark.django_db
def test_the_admin_lists_deliveries_and_notices(client, finish_run, billable, clerk, superuser):
    # given
    run = finish_run(created_by=clerk)
    client.force_login(superuser)
    # when
    deliveries = client.get("/admin/notifications/emaildelivery/", {"q": run.number})
    notices = client.get("/admin/notifications/runnotification/", {"q": run.number})
    # then
    assert deliveries.status_code == notices.status_code == 200
    assert "clerk@example.com" in deliveries.content.decode()
    assert run.number in notices.content.decode()
    filtered = client.get("/admin/notifications/emaildelivery/", {"status__exact": "failed"})
    assert "clerk@example.com" not in filtered.content.decode()
