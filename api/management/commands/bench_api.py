"""``manage.py bench_api``: the API's speed side by side with its floor
(tools.bench.api says what is timed and how)."""

import json

from django.core.management.base import BaseCommand, CommandError

from tools.bench.api import BenchmarkFailed, bench_api


class Command(BaseCommand):
    help = (
        "Benchmark the HTTP API: a run's documents pages against the root, "
        "usage against import_usage."
    )

    def add_arguments(self, parser):
        parser.add_argument("--documents", type=int, default=100_000)
        parser.add_argument(
            "--requests", type=int, default=300, help="requests of each page and of the root"
        )
        parser.add_argument("--limit", type=int, default=100, help="documents a page (1..100)")
        parser.add_argument("--usage-records", type=int, default=1000)
        parser.add_argument("--usage-rounds", type=int, default=10)
        parser.add_argument(
            "--force",
            action="store_true",
            help="empty the billing tables first (PostgreSQL) instead of reusing a large run",
        )

    def handle(self, *args, **options):
        if not 1 <= options["limit"] <= 100:
            raise CommandError("--limit is from 1 to 100, as the API's.")
        for name in ("documents", "requests", "usage_records", "usage_rounds"):
            if options[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} must be at least 1.")
        if options["usage_records"] > 1000:
            raise CommandError("--usage-records is at most 1000 (one request's records).")
        try:
            results = bench_api(
                documents=options["documents"],
                requests=options["requests"],
                usage_records=options["usage_records"],
                usage_rounds=options["usage_rounds"],
                force=options["force"],
                page=options["limit"],
                progress=self.stderr.write,
            )
        except BenchmarkFailed as failure:
            raise CommandError(str(failure)) from failure
        self.stdout.write(json.dumps(results, default=str))
