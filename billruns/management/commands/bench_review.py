"""``manage.py bench_review``: the Review tab of a run beside an empty page
(tools.bench.review says what is timed and how)."""

import json

from django.core.management.base import BaseCommand, CommandError

from billruns import review
from billruns.models import BillRun
from tools.bench.billrun import _bench_user
from tools.bench.review import ReviewBenchmarkFailed, measure, report_lines


class Command(BaseCommand):
    help = "Benchmark the Review tab of a run that has a previous run."

    def add_arguments(self, parser):
        parser.add_argument(
            "--run", default="", help="the run's number (default: the latest with a previous run)"
        )
        parser.add_argument("--samples", type=int, default=40)
        parser.add_argument(
            "--keep", action="store_true", help="keep the review written; do not time its write"
        )
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options):
        runs = BillRun.objects.filter(status__in=review.COMPARABLE, preview=False)
        if options["run"]:
            run = runs.filter(number=options["run"]).first()
        else:
            run = next((run for run in runs.order_by("-id") if review.previous_run(run)), None)
        if run is None:
            raise CommandError("No Completed or Posted run (with a previous run) to measure.")
        if options["samples"] < 1:
            raise CommandError("--samples must be at least 1.")
        try:
            results = measure(
                run=run, user=_bench_user(), samples=options["samples"], rewrite=not options["keep"]
            )
        except ReviewBenchmarkFailed as failure:
            raise CommandError(str(failure)) from failure
        results["run"] = run.number
        for line in report_lines(results):
            self.stdout.write(line)
        if options["json"]:
            self.stdout.write(json.dumps(results, default=str))
