"""``manage.py seed_demo``: load the demo data into an empty database, once
(tools.seed_demo says what it holds and how it is loaded)."""

import sys

from django.core.management.base import BaseCommand

from tools.seed_demo import SeedRefused, seed_demo, seed_demo_changes


class Command(BaseCommand):
    help = (
        "Load demo customers, with seats and usage, into an empty database, "
        "bill and post a first run and make a few subscription changes "
        "(does nothing if accounts exist)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--accounts", type=int, default=200, help="how many (default 200)")
        parser.add_argument("--seed", type=int, default=2026, help="random seed (default 2026)")

    def handle(self, *args, accounts, seed, **options):
        if accounts < 1:
            self.stderr.write("--accounts must be at least 1")
            sys.exit(2)
        try:
            summary = seed_demo(accounts=accounts, seed=seed)
        except SeedRefused as refused:
            for line in refused.lines:
                self.stderr.write(line)
            sys.exit(1)
        self.stdout.write("demo data already present" if summary is None else str(summary))
        # A first run and a few changes, so that the next run shows adjustments.
        try:
            changes = seed_demo_changes(fresh=summary is not None)
        except SeedRefused as refused:
            for line in refused.lines:
                self.stderr.write(line)
            sys.exit(1)
        if changes is not None:
            self.stdout.write(str(changes))
