import os

import pytest
from django.conf import settings
from hypothesis import settings as hypothesis_settings

# CI explores the same examples on every run, so a red build is reproducible
# and never a coin toss; `make test` on a developer's machine explores new
# ones each time (and keeps what fails in .hypothesis/).
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_collection_modifyitems(config, items):
    on_postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    skip = pytest.mark.skip(reason="needs PostgreSQL (DATABASE_URL=postgres://...)")
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            item.add_marker(skip)


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("admin", "admin@example.com", "pw")


@pytest.fixture
def clerk(django_user_model):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user("clerk", "clerk@example.com", "pw")
    user.groups.add(Group.objects.get(name="Billing clerk"))
    return user


@pytest.fixture
def viewer(django_user_model):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user("viewer", "viewer@example.com", "pw")
    user.groups.add(Group.objects.get(name="Billing viewer"))
    return user
