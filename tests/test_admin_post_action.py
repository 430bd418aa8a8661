"""The admin's "Post selected draft documents" asks first (issue 11, item 11):
an intermediate page, as Django's delete_selected has, and posting only when
its form comes back."""

import datetime

import pytest
from django.contrib.admin import helpers
from django.urls import reverse
from django.utils import timezone

from invoices.models import DocumentStatus
from tests.factories import DocumentFactory

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:invoices_invoice_changelist")


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


def statuses(*documents):
    for document in documents:
        document.refresh_from_db()
    return [document.status for document in documents]


def choose_action(client, documents, url=CHANGELIST, **extra):
    return client.post(
        url,
        {
            "action": "post_selected_documents",
            helpers.ACTION_CHECKBOX_NAME: [document.pk for document in documents],
            **extra,
        },
    )


def test_choosing_the_action_shows_a_confirmation_page_and_posts_nothing(admin_client):
    drafts = [DocumentFactory(), DocumentFactory()]

    response = choose_action(admin_client, drafts)

    assert response.status_code == 200
    assert "admin/invoices/post_selected_confirmation.html" in [
        template.name for template in response.templates
    ]
    content = response.content.decode()
    assert "Are you sure you want to post 2 draft documents?" in content
    assert all(draft.number in content for draft in drafts)
    assert 'name="post" value="yes"' in content
    assert all(f'value="{draft.pk}"' in content for draft in drafts)
    assert statuses(*drafts) == [DocumentStatus.DRAFT] * 2


def test_the_confirmation_posts_the_drafts(admin_client, superuser):
    drafts = [DocumentFactory(), DocumentFactory()]

    response = choose_action(admin_client, drafts, post="yes")

    assert response.status_code == 302
    assert statuses(*drafts) == [DocumentStatus.POSTED] * 2
    assert drafts[0].posted_by == superuser
    messages = [str(m) for m in response.wsgi_request._messages]
    assert messages == ["Posted 2 documents."]


def test_the_confirmation_says_which_selected_documents_stay_as_they_are(admin_client):
    draft = DocumentFactory()
    posted = DocumentFactory(status=DocumentStatus.POSTED, posted_at=timezone.now())

    response = choose_action(admin_client, [draft, posted])

    content = response.content.decode()
    assert "post 1 draft document?" in content
    assert "1 other selected document is not a Draft and will be left as it is." in content
    assert posted.number not in content.split('data-testid="post-confirm-drafts"')[1]


def test_a_selection_without_drafts_offers_nothing_to_post(admin_client):
    posted = DocumentFactory(status=DocumentStatus.POSTED, posted_at=timezone.now())

    response = choose_action(admin_client, [posted])

    assert response.status_code == 200
    assert b"there is nothing to post" in response.content
    assert b'name="post"' not in response.content


def test_the_confirmation_warns_of_documents_already_past_due(admin_client):
    yesterday = timezone.localdate() - datetime.timedelta(days=1)
    drafts = [DocumentFactory(due_date=yesterday), DocumentFactory(due_date=timezone.localdate())]

    response = choose_action(admin_client, drafts)

    assert b"1 of them would be posted already past due" in response.content


def test_select_all_is_confirmed_and_posted_over_the_same_filtered_list(admin_client):
    usd = [DocumentFactory(), DocumentFactory()]
    eur = DocumentFactory(currency="EUR")
    url = f"{CHANGELIST}?currency__exact=USD"

    response = choose_action(admin_client, usd[:1], url=url, select_across="1")
    assert b'name="select_across" value="1"' in response.content
    assert b"post 2 draft documents?" in response.content
    assert statuses(*usd, eur) == [DocumentStatus.DRAFT] * 3

    response = choose_action(admin_client, usd[:1], url=url, select_across="1", post="yes")

    assert response.status_code == 302
    assert statuses(*usd, eur) == [
        DocumentStatus.POSTED,
        DocumentStatus.POSTED,
        DocumentStatus.DRAFT,
    ]
