"""What a key may do: its user's permissions (its role's group), the same
permission each page checks for the same action."""

import functools

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
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


def key_user_has_perm(user, permission: str) -> bool:
    """``user.has_perm(permission)`` as the model backend answers it (the
    user's groups' permissions and its own), in one query of two tables
    when a group grants it, as a key's role does. The backend reads every
    permission of the user and of its groups, in two queries of four
    tables each, at every request (a key's user is loaded afresh each
    time): a fifth of a short request's time (docs/benchmarks.md, session 8)."""
    if not user.is_active:
        return False
    if user.is_superuser:
        return True
    permission_id = _permission_id(permission)
    if permission_id is None:
        return False
    User = get_user_model()
    return (
        User.groups.through.objects.filter(
            user_id=user.pk, group__permissions__id=permission_id
        ).exists()
        or User.user_permissions.through.objects.filter(
            user_id=user.pk, permission_id=permission_id
        ).exists()
    )


class KeyPermissions(permissions.BasePermission):
    """A key is required; then the view's ``permissions`` maps each method to
    the permission the page of that action requires (``billruns.post_billrun``
    for posting a run: ``billruns/views.py``)."""

    message = "This API key's role may not do this."

    def has_permission(self, request, view):
        if not isinstance(request.auth, ApiKey):
            return False
        needed = view.required_permission(request)
        return needed is None or key_user_has_perm(request.user, needed)
