from django.apps import AppConfig


class BillrunsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "billruns"
