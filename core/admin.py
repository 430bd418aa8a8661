"""Mixins the operators' admin of every app shares. No model is registered
here (the admin's autodiscovery imports this module and finds none)."""

from django.contrib import admin


class ReadOnlyAdminMixin:
    """Viewable by whoever holds the view permission; never written here."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(ReadOnlyAdminMixin, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def get_readonly_fields(self, request, obj=None):
        return self.fields


class ProtectedDeleteMixin:
    """A delete that billed items (or runs, documents) refuse says so.

    Django's page lists first the objects the user may not delete, and the
    items are never deleted by anyone: the page would say "your account
    doesn't have permission to delete document items" when the truth is that
    nobody may, because a document shows them."""

    def get_deleted_objects(self, objs, request):
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        if protected:
            perms_needed = set()
        return deleted, model_count, perms_needed, protected
