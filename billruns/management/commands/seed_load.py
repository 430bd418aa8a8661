"""``manage.py seed_load``: fill a PostgreSQL database for the load test
(tools.seed_load says with what)."""

from django.core.management.base import BaseCommand, CommandError

from tools.seed_load import SeedRefused, seed_load


class Command(BaseCommand):
    help = "Fill a PostgreSQL database with accounts, bill runs and invoices for the load test."

    def add_arguments(self, parser):
        parser.add_argument("--runs", type=int, required=True)
        parser.add_argument("--invoices", type=int, required=True)
        parser.add_argument("--accounts", type=int, default=10_000)
        parser.add_argument(
            "--force", action="store_true", help="empty the billing tables of the database first"
        )

    def handle(self, *args, runs, invoices, accounts, force, **options):
        try:
            seed_load(
                runs=runs,
                invoices=invoices,
                accounts=accounts,
                force=force,
                progress=self.stderr.write,
            )
        except SeedRefused as refused:
            raise CommandError(str(refused)) from refused
