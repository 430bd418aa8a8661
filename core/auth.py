"""Permissions kept under the change stamp."""

from django.contrib.auth.backends import ModelBackend
from django.core.cache import caches

from core import stamps

CACHE = "pages"


class StampedModelBackend(ModelBackend):
    """Django's ModelBackend, but a user's permissions are read once per
    change stamp (core.stamps: it moves with any change to users, groups
    and permissions) rather than with two queries on every request. Where
    changes are not stamped (SQLite) it is ModelBackend."""

    def get_all_permissions(self, user_obj, obj=None):
        if (
            obj is None
            and user_obj.is_active
            and not user_obj.is_anonymous
            and not hasattr(user_obj, "_perm_cache")
        ):
            stamp = stamps.for_user(user_obj)
            if stamp is not None:
                key = f"perms:{user_obj.pk}:{stamp}"
                found = caches[CACHE].get(key)
                if found is None:
                    found = super().get_all_permissions(user_obj)
                    caches[CACHE].set(key, found)
                user_obj._perm_cache = found
        return super().get_all_permissions(user_obj, obj)
