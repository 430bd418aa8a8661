"""Task-queue entry points: thin, each calls a service by id. Every one may
run twice: the services send only what is due and unclaimed."""

from webhooks import delivery


def deliver_endpoint(endpoint_id):
    return delivery.endpoint_deliver(endpoint_id=endpoint_id)


def send_due_webhooks():
    """Every minute (a schedule made by migration 0002): deliveries whose
    retry is due or whose task was lost, and owners' emails not sent yet."""
    return delivery.deliveries_send_due()


def send_disabled_email(email_id):
    delivery.disabled_email_send(email_id=email_id)
