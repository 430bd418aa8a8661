from django.apps import AppConfig


class BillrunsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "billruns"

    def ready(self):
        from django_q.signals import post_spawn

        from billruns import leases

        # Each task-queue worker sweeps the runs' leases (billruns.leases).
        post_spawn.connect(leases.start_sweeper, dispatch_uid="billruns.leases.start_sweeper")
