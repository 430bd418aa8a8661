"""``manage.py bench_billrun``: measure a bill run end to end, through the real
code (tools.bench.billrun says what is timed and how)."""

import json

from django.core.management.base import BaseCommand, CommandError

from tools.bench.billrun import BenchmarkFailed, bench_billrun, report_lines


class Command(BaseCommand):
    help = "Benchmark a bill run over a generated book of accounts."

    def add_arguments(self, parser):
        parser.add_argument("--accounts", type=int, default=10000)
        parser.add_argument("--subscriptions-per-account", type=int, default=2)
        parser.add_argument("--workers", type=int, default=2)
        parser.add_argument("--json", action="store_true")
        parser.add_argument(
            "--force", action="store_true", help="delete all billing data in the database first"
        )
        parser.add_argument("--timeout", type=int, default=1800)
        parser.add_argument(
            "--usage-records",
            type=int,
            default=None,
            metavar="N",
            help="add a usage charge to every other subscription and import N usage records; "
            "the run is timed without them and with them",
        )
        parser.add_argument(
            "--changes",
            type=float,
            default=None,
            metavar="F",
            help="post a first run, change a fraction F of the subscriptions (price changes and "
            "removals), and time the next run without and with the changes",
        )

    def handle(self, *args, **options):
        try:
            results = bench_billrun(
                accounts=options["accounts"],
                subscriptions_per_account=options["subscriptions_per_account"],
                workers=options["workers"],
                force=options["force"],
                timeout=options["timeout"],
                progress=self.stderr.write,
                usage_records=options["usage_records"],
                changes=options["changes"],
            )
        except BenchmarkFailed as failure:
            raise CommandError(str(failure)) from failure
        for line in report_lines(results):
            self.stdout.write(line)
        if options["json"]:
            self.stdout.write(json.dumps(results, default=str))
