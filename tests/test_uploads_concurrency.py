"""Uploaded import files under concurrency, on PostgreSQL with real
threads (core.uploads): the task delivered twice at once imports once, and
the sweep leaves alone an import a worker is running."""

import datetime
import threading

import pytest
from django.db import connection, transaction
from django.utils import timezone

from core.locks import lock_one
from core.uploads import SWEEP_GRACE_SECONDS, UploadStatus
from customers.models import UsageRecord
from invoices.models import UsageUpload, UsageUploadPart
from invoices.usage_uploads import usage_upload_import, usage_uploads_sweep
from tests.factories import UsageChargeFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

JAN = datetime.date(2026, 1, 1)


@pytest.fixture
def stored(django_user_model):
    UsageChargeFactory(number="C-CALLS", start_date=JAN)
    user = django_user_model.objects.create_user("clerk", password="pw")
    content = b"id,charge,date,quantity\nu1,C-CALLS,2026-01-10,5\nu2,C-CALLS,2026-01-11,7\n"
    upload = UsageUpload.objects.create(file_name="u.csv", size=len(content), uploaded_by=user)
    UsageUploadPart.objects.create(upload=upload, index=0, data=content)
    return upload


def in_thread(fn):
    errors = []

    def run():
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def test_the_task_delivered_twice_at_once_imports_once(stored):
    threads = [in_thread(lambda: usage_upload_import(upload_id=stored.pk)) for _ in range(2)]
    for thread, errors in threads:
        thread.join(30)
        assert errors == []

    stored.refresh_from_db()
    assert stored.status == UploadStatus.IMPORTED
    assert stored.summary == "imported 2 usage records, 0 already recorded"
    assert UsageRecord.objects.count() == 2


def test_the_sweep_leaves_alone_an_import_a_worker_holds(stored):
    long_ago = timezone.now() - datetime.timedelta(seconds=SWEEP_GRACE_SECONDS + 1)
    UsageUpload.objects.filter(pk=stored.pk).update(
        status=UploadStatus.PROCESSING, attempts=1, started_at=long_ago
    )
    holding, release = threading.Event(), threading.Event()

    def worker():
        with transaction.atomic():
            lock_one(UsageUpload, stored.pk)
            holding.set()
            release.wait(30)

    thread, errors = in_thread(worker)
    assert holding.wait(30)
    try:
        assert usage_uploads_sweep() == 0
    finally:
        release.set()
        thread.join(30)
    assert errors == []
    # once the worker is gone, the sweep takes it up
    assert usage_uploads_sweep() == 1
