"""What a key may do: its user's permissions (its role's group), the same
permission each page checks for the same action."""

import functools

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db.models import BooleanField
from django.db.models.expressions import RawSQL
from rest_framework import permissions

from api.models import ApiKey


@functools.cache
def _permission_id(permission: str) -> int | None:
    """The id of ``app_label.codename`` (rows written by migrations, never
    changed: kept for the process)."""
    app_label, _, codename = permission.partition(".")
    return (
        Permission.objects.filter(content_type__app_label=app_label, codename=codename)
        .values_list("id", flat=True)
        .first()
    )


def _granted_to(user_id, permission_id):
    """The two ways ``permission_id`` reaches the user ``user_id``, as
    querysets: through one of its groups (a key's role), given to the user
    itself."""
    User = get_user_model()
    return (
        User.groups.through.objects.filter(user_id=user_id, group__permissions__id=permission_id),
        User.user_permissions.through.objects.filter(user_id=user_id, permission_id=permission_id),
    )


@functools.cache
def _granted_sql() -> str:
    """SQL, in the query of ApiKey rows: whether the key's user holds the
    permission of id %s (twice) through one of its groups or itself."""
    User = get_user_model()
    memberships = User.groups.through._meta.db_table
    granted = Group.permissions.through._meta.db_table
    own = User.user_permissions.through._meta.db_table
    key = ApiKey._meta.db_table
    return f"""EXISTS (
            SELECT 1 FROM {memberships} m JOIN {granted} g ON g.group_id = m.group_id
            WHERE m.user_id = {key}.user_id AND g.permission_id = %s
        ) OR EXISTS (
            SELECT 1 FROM {own} o WHERE o.user_id = {key}.user_id AND o.permission_id = %s
        )"""  # noqa: S608 (the tables' names; the id is a parameter)


def with_permission(keys, permission: str | None):
    """``keys`` (an ApiKey queryset) annotated with ``granted``: whether
    each key's user holds ``permission`` through its groups or itself, read
    in the key's own query, not a second one (``key_granted``); two indexed
    EXISTS, written as SQL (the ORM took longer compiling them than the
    second query). Unchanged for None or an unknown permission."""
    permission_id = _permission_id(permission) if permission else None
    if permission_id is None:
        return keys
    return keys.annotate(
        granted=RawSQL(  # noqa: S611 (constant SQL; the id is a parameter)
            _granted_sql(), (permission_id, permission_id), BooleanField()
        )
    )


def key_granted(key, permission: str):
    """Whether ``key``'s user holds ``permission`` as its query read it
    (``with_permission``), or None when it was not read with it."""
    if getattr(key, "granted_permission", None) != permission:
        return None
    return key.granted


def key_user_has_perm(user, permission: str, *, granted=None) -> bool:
    """``user.has_perm(permission)`` as the model backend answers it (the
    user's groups' permissions and its own), in one query of two tables
    when a group grants it, as a key's role does, or none when ``granted``
    says whether its groups or itself hold it (the key's query read it:
    ``with_permission``). The backend reads every permission of the user
    and of its groups, in two queries of four tables each, at every request
    (a key's user is loaded afresh each time): a fifth of a short request's
    time (docs/benchmarks.md, session 8)."""
    if not user.is_active:
        return False
    if user.is_superuser:
        return True
    if granted is not None:
        return granted
    permission_id = _permission_id(permission)
    if permission_id is None:
        return False
    by_group, to_user = _granted_to(user.pk, permission_id)
    return by_group.exists() or to_user.exists()


class KeyPermissions(permissions.BasePermission):
    """A key is required; then the view's ``permissions`` maps each method to
    the permission the page of that action requires (``billruns.post_billrun``
    for posting a run: ``billruns/views.py``)."""

    message = "This API key's role may not do this."

    def has_permission(self, request, view):
        if not isinstance(request.auth, ApiKey):
            return False
        needed = view.required_permission(request)
        if needed is None:
            return True
        return key_user_has_perm(request.user, needed, granted=key_granted(request.auth, needed))
