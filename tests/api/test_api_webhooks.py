"""Webhook endpoints through the API: created with their secret shown once,
listed, deleted; their delivery attempts listed, newest first."""

import pytest
from django.utils import timezone

from tests.api.conftest import error_of
from webhooks.models import DeliveryAttempt, Endpoint, Event

HOOKS = "/api/v1/webhooks/"


@pytest.mark.django_db
def test_create_list_delete(api):
    # when
    response = api.post(HOOKS, {"url": "https://erp.example/hooks", "events": ["bill_run.posted"]})
    # then
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["secret"].startswith("whsec_")
    endpoint = Endpoint.objects.get()
    assert endpoint.secret == created["secret"]
    assert endpoint.owner.username == "key:crm"
    listed = api.get(HOOKS).json()
    assert listed["results"] == [{k: v for k, v in created.items() if k != "secret"}]
    assert "whsec_" not in str(listed)
    assert api.delete(f"{HOOKS}{endpoint.pk}/").status_code == 204
    assert not Endpoint.objects.exists()
    error_of(api.delete(f"{HOOKS}{endpoint.pk}/"), 404, "not_found")
    error_of(api.delete(f"{HOOKS}abc/"), 404, "not_found")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, field",
    [
        ({"url": "ftp://erp.example/", "events": ["bill_run.posted"]}, "url"),
        ({"url": "https://erp.example/", "events": ["bill_run.exploded"]}, "events"),
        ({"url": "https://erp.example/", "events": []}, "events"),
        ({"url": "https://erp.example/", "events": "bill_run.posted"}, "events"),
        ({"url": 7, "events": ["bill_run.posted"]}, "url"),
        ({"url": "https://erp.example/", "events": ["bill_run.posted"], "secret": "x"}, "secret"),
    ],
)
def test_a_bad_endpoint_is_400(api, body, field):
    error = error_of(api.post(HOOKS, body), 400, "invalid")
    assert field in error["fields"], error
    assert not Endpoint.objects.exists()


@pytest.mark.django_db
def test_a_private_address_is_refused_with_debug_off(api, settings):
    settings.DEBUG = False
    settings.WEBHOOK_ALLOW_PRIVATE = False
    body = {"url": "http://127.0.0.1:8000/hooks", "events": ["bill_run.posted"]}
    error = error_of(api.post(HOOKS, body), 400, "invalid")
    assert "private" in error["fields"]["url"][0]
    settings.WEBHOOK_ALLOW_PRIVATE = True
    assert api.post(HOOKS, body).status_code == 201


@pytest.mark.django_db
def test_deliveries_newest_first(api):
    endpoint_id = api.post(
        HOOKS, {"url": "https://erp.example/hooks", "events": ["bill_run.posted"]}
    ).json()["id"]
    endpoint = Endpoint.objects.get(pk=endpoint_id)
    event = Event.objects.create(
        endpoint=endpoint,
        event_id="evt_1",
        event_type="bill_run.posted",
        subject="BR1",
        created=timezone.now(),
        body="{}",
    )
    for code in (500, 200):
        DeliveryAttempt.objects.create(
            endpoint=endpoint,
            outbox=event,
            event_id="evt_1",
            event_type="bill_run.posted",
            attempted_at=timezone.now(),
            status_code=code,
            duration_ms=12,
            error="" if code == 200 else "HTTP 500",
        )
    response = api.get(f"{HOOKS}{endpoint_id}/deliveries/?limit=1")
    assert response.status_code == 200
    page = response.json()
    assert [a["status_code"] for a in page["results"]] == [200]
    assert page["results"][0]["event_id"] == "evt_1"
    rest = api.get(page["next"]).json()
    assert [a["status_code"] for a in rest["results"]] == [500]
    assert rest["results"][0]["error"] == "HTTP 500"
    error_of(api.get(f"{HOOKS}999/deliveries/"), 404, "not_found")


@pytest.mark.django_db
def test_a_viewer_sees_endpoints_but_cannot_change_them(api, viewer_api):
    endpoint_id = api.post(
        HOOKS, {"url": "https://erp.example/hooks", "events": ["bill_run.posted"]}
    ).json()["id"]
    assert viewer_api.get(HOOKS).status_code == 200
    assert viewer_api.get(f"{HOOKS}{endpoint_id}/deliveries/").status_code == 200
    body = {"url": "https://other.example/", "events": ["bill_run.posted"]}
    error_of(viewer_api.post(HOOKS, body), 403, "forbidden")
    error_of(viewer_api.delete(f"{HOOKS}{endpoint_id}/"), 403, "forbidden")
    assert Endpoint.objects.count() == 1


@pytest.mark.django_db
def test_the_same_creation_twice_is_one_endpoint(api):
    body = {"url": "https://erp.example/hooks", "events": ["payment.recorded"]}
    first = api.post(HOOKS, body, headers={"Idempotency-Key": "w"})
    again = api.post(HOOKS, body, headers={"Idempotency-Key": "w"})
    assert again.json() == first.json()
    assert Endpoint.objects.count() == 1
