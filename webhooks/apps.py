from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "webhooks"

    def ready(self):
        from billruns import signals as run_signals
        from invoices import signals as document_signals
        from webhooks import receivers

        for signal, receiver in (
            (run_signals.bill_run_completed, receivers.on_bill_run_completed),
            (run_signals.bill_run_failed, receivers.on_bill_run_failed),
            (run_signals.bill_run_posted, receivers.on_bill_run_posted),
            (run_signals.bill_run_canceled, receivers.on_bill_run_canceled),
            (document_signals.documents_posted, receivers.on_documents_posted),
            (document_signals.document_posted, receivers.on_document_posted),
            (document_signals.payment_recorded, receivers.on_payment_recorded),
        ):
            signal.connect(receiver, dispatch_uid=f"webhooks.{receiver.__name__}")
