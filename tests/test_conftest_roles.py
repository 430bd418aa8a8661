"""The role fixtures survive a transactional test's flush (tests/conftest.py)."""

import pytest
from django.contrib.auth.models import Group

from tests.conftest import _role


@pytest.mark.django_db
def test_a_flushed_role_is_made_again_with_its_permissions(role_permissions):
    clerk_permissions = role_permissions["Billing clerk"]
    assert ("billruns", "add_billrun") in clerk_permissions
    Group.objects.filter(name="Billing clerk").delete()  # what a flush does

    group = _role("Billing clerk", role_permissions)

    assert sorted(group.permissions.values_list("content_type__app_label", "codename")) == sorted(
        clerk_permissions
    )


@pytest.mark.django_db(transaction=True)
def test_clerk_after_a_flush(clerk):
    assert clerk.has_perm("billruns.add_billrun")
