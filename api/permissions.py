"""What a key may do: its user's permissions (its role's group), the same
permission each page checks for the same action."""

from rest_framework import permissions

from api.models import ApiKey


class KeyPermissions(permissions.BasePermission):
    """A key is required; then the view's ``permissions`` maps each method to
    the permission the page of that action requires (``billruns.post_billrun``
    for posting a run: ``billruns/views.py``)."""

    message = "This API key's role may not do this."

    def has_permission(self, request, view):
        if not isinstance(request.auth, ApiKey):
            return False
        needed = view.required_permission(request)
        return needed is None or request.user.has_perm(needed)
