from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "notifications"

    def ready(self):
        from billruns.signals import bill_run_finished, bill_run_posted
        from notifications import receivers

        bill_run_finished.connect(
            receivers.on_bill_run_finished, dispatch_uid="notifications.on_bill_run_finished"
        )
        bill_run_posted.connect(
            receivers.on_bill_run_posted, dispatch_uid="notifications.on_bill_run_posted"
        )
