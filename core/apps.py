from django.apps import AppConfig


class CoreConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "core"
    verbose_name = "Site infrastructure"

    def ready(self):
        # Registered here, not when core.bulk is first imported: a query
        # that says ``__anyof`` works in every process, whatever it imported.
        from django.db import models
        from django.db.models.signals import post_migrate

        from core import stamps
        from core.bulk import AnyOf

        models.IntegerField.register_lookup(AnyOf)
        models.ForeignKey.register_lookup(AnyOf)
        # After every migrate (and a test's flush): each billing table, new
        # ones too, gets its change-stamp trigger (core.stamps).
        post_migrate.connect(stamps.install_after_migrate, sender=self)
