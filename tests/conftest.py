import functools
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


@pytest.fixture(autouse=True)
def _empty_page_cache():
    """Each test starts with no rendered page kept (core.pagecache): a
    rolled-back test's pages must not be served to the next one."""
    from django.core.cache import caches

    caches["pages"].clear()


def _rendering(assert_queries):
    """A query-count assertion of a page's rendering: the page cache
    (core.pagecache) and the header's notices kept in it are emptied as it
    begins, so that it counts what rendering reads whatever the previous
    request left (tests/test_page_cache.py counts the cache's own path)."""
    from contextlib import contextmanager

    from django.core.cache import caches

    @contextmanager
    def counting(*args, **kwargs):
        caches["pages"].clear()
        with assert_queries(*args, **kwargs) as context:
            yield context

    return counting


@pytest.fixture
def django_assert_num_queries(pytestconfig):
    from pytest_django.fixtures import _assert_num_queries

    return _rendering(functools.partial(_assert_num_queries, pytestconfig, exact=True))


@pytest.fixture
def django_assert_max_num_queries(pytestconfig):
    from pytest_django.fixtures import _assert_num_queries

    return _rendering(functools.partial(_assert_num_queries, pytestconfig, exact=False))


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("admin", "admin@example.com", "pw")


@pytest.fixture(scope="session")
def role_permissions(django_db_setup, django_db_blocker):
    """Each role group's permissions as the migrations left them, read once
    before any test runs: a transactional test flushes the groups (the
    content types and permissions come back with ``post_migrate``; the
    groups, made by data migrations, do not)."""
    from django.contrib.auth.models import Group

    with django_db_blocker.unblock():
        return {
            group.name: list(group.permissions.values_list("content_type__app_label", "codename"))
            for group in Group.objects.all()
        }


def _role(name, role_permissions):
    """The role group ``name``, made again from ``role_permissions`` when a
    transactional test flushed it."""
    from django.contrib.auth.models import Group, Permission

    group, created = Group.objects.get_or_create(name=name)
    if created:
        for app_label, codename in role_permissions[name]:
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
    return group


@pytest.fixture
def clerk(django_user_model, role_permissions):
    user = django_user_model.objects.create_user("clerk", "clerk@example.com", "pw")
    user.groups.add(_role("Billing clerk", role_permissions))
    return user


@pytest.fixture
def viewer(django_user_model, role_permissions):
    user = django_user_model.objects.create_user("viewer", "viewer@example.com", "pw")
    user.groups.add(_role("Billing viewer", role_permissions))
    return user
