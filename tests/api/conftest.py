import json

import pytest
from rest_framework.test import APIClient

from api.keys import api_key_create


class Api:
    """A client holding one key: ``api.get(path)``, ``api.post(path, body)``."""

    def __init__(self, raw=None):
        self.client = APIClient()
        self.raw = raw
        if raw:
            self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")

    def _call(self, method, path, body=None, headers=None, raw=None):
        kwargs = {"headers": headers or {}}
        if raw is not None:
            kwargs.update(data=raw, content_type="application/json")
        elif body is not None:
            kwargs.update(data=json.dumps(body), content_type="application/json")
        return getattr(self.client, method)(path, **kwargs)

    def get(self, path, **kw):
        return self._call("get", path, **kw)

    def post(self, path, body=None, **kw):
        return self._call("post", path, body, **kw)

    def patch(self, path, body=None, **kw):
        return self._call("patch", path, body, **kw)

    def delete(self, path, **kw):
        return self._call("delete", path, **kw)

    def put(self, path, body=None, **kw):
        return self._call("put", path, body, **kw)


@pytest.fixture
def clerk_key(db):
    return api_key_create(name="crm", role="clerk")


@pytest.fixture
def viewer_key(db):
    return api_key_create(name="reports", role="viewer")


@pytest.fixture
def api(clerk_key):
    return Api(clerk_key[1])


@pytest.fixture
def viewer_api(viewer_key):
    return Api(viewer_key[1])


@pytest.fixture(autouse=True)
def _no_throttle_carryover():
    from django.core.cache import cache

    cache.clear()


def error_of(response, status, code):
    assert response.status_code == status, (response.status_code, response.content[:500])
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]
