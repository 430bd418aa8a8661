from django.apps import AppConfig


class BillingSiteConfig(AppConfig):
    """The site itself: wires the apps together and adds deployment checks."""

    name = "billing_site"
    verbose_name = "Billing site"

    def ready(self):
        from billing_site import checks, receivers  # noqa: F401 - registers them
