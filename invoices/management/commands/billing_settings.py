from django.core.management.base import BaseCommand
from django.db import transaction

from core import locks
from invoices.models import TenantSettings

ON_OFF = {"on": True, "off": False}


class Command(BaseCommand):
    help = "Show the tenant-wide billing settings; with a flag, change them first."

    def add_arguments(self, parser):
        parser.add_argument(
            "--advanced-ar-settlement",
            choices=sorted(ON_OFF),
            help="on: a net credit makes a credit memo; off: a negative invoice",
        )

    def handle(self, *args, advanced_ar_settlement=None, **options):
        if advanced_ar_settlement is not None:
            with transaction.atomic():
                TenantSettings.load()
                # Lock the single row so two operators' changes apply one after the other.
                current = locks.lock_one(TenantSettings, 1)
                current.advanced_ar_settlement = ON_OFF[advanced_ar_settlement]
                current.save(update_fields=["advanced_ar_settlement", "updated_at"])
        current = TenantSettings.load()
        self.stdout.write(
            f"advanced_ar_settlement: {'on' if current.advanced_ar_settlement else 'off'}"
        )
