from django.apps import AppConfig


class BillrunsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "billruns"

    def ready(self):
        from django_q.signals import post_spawn

        from billruns import leases
        from billruns.services.posting import document_post_refusal
        from invoices.services import register_document_post_check

        # Each task-queue worker sweeps the runs' leases (billruns.leases).
        post_spawn.connect(leases.start_sweeper, dispatch_uid="billruns.leases.start_sweeper")
        # A document of a run still generating or being canceled is not
        # posted on its own (invoices knows no run).
        register_document_post_check(document_post_refusal)
