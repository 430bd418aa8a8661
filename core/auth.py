"""Permissions kept under the change stamp."""

from django.contrib.auth.backends import ModelBackend
from django.core.cache import caches

from core import stamps
from core.pagecache import CACHE


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
                user_obj._perm_cache = caches[CACHE].get_or_set(
                    f"perms:{user_obj.pk}:{stamp}",
                    lambda: super(StampedModelBackend, self).get_all_permissions(user_obj),
                )
        return super().get_all_permissions(user_obj, obj)
