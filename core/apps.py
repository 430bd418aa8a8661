from django.apps import AppConfig


class CoreConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "core"
    verbose_name = "Site infrastructure"

    def ready(self):
        # Registered here, not when core.bulk is first imported: a query
        # that says ``__anyof`` works in every process, whatever it imported.
        from django.db import models

        from core.bulk import AnyOf

        models.IntegerField.register_lookup(AnyOf)
        models.ForeignKey.register_lookup(AnyOf)
