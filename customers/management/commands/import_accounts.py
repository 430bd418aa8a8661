import sys

from django.core.management.base import BaseCommand

from core.cli import QuietWhenStdoutClosed, non_empty
from customers.importer import ImportRefused, accounts_import_file


class Command(QuietWhenStdoutClosed, BaseCommand):
    help = (
        "Import accounts, subscriptions and charges from a JSON file in UTF-8 ('-' for "
        "standard input). The whole file is validated first; on any problem nothing is "
        "imported."
    )
    # Tests hand in a byte stream for '-' instead of the process's stdin.
    stealth_options = ("stdin",)

    def add_arguments(self, parser):
        parser.add_argument(
            "file",
            metavar="FILE",
            type=non_empty,
            help="the JSON file (UTF-8, a byte order mark allowed), or - for stdin",
        )

    def handle(self, *args, file, **options):
        stdin = options.get("stdin") or sys.stdin.buffer
        try:
            summary = accounts_import_file(path=file, stdin=stdin)
        except ImportRefused as refused:
            for line in refused.lines():
                self.stderr.write(line)
            sys.exit(1)
        self.stdout.write(str(summary))
