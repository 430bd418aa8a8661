from django.apps import AppConfig


class CustomersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "customers"

    def ready(self):
        # Registered here, not when customers.bulk is first imported: a query
        # that says ``__anyof`` works in every process, whatever it imported.
        from django.db import models

        from customers.bulk import AnyOf

        models.IntegerField.register_lookup(AnyOf)
        models.ForeignKey.register_lookup(AnyOf)
