import sys

from django.core.management.base import BaseCommand

from core.cli import QuietWhenStdoutClosed, non_empty
from invoices.usage import UsageImportRefused, usage_import_file


class Command(QuietWhenStdoutClosed, BaseCommand):
    help = (
        "Record usage from a CSV file in UTF-8 ('-' for standard input) with the header "
        "id,charge,date,quantity. The whole file is validated first; on any problem nothing "
        "is recorded. A record already recorded with the same values counts once."
    )
    # Tests hand in a byte stream for '-' instead of the process's stdin.
    stealth_options = ("stdin",)

    def add_arguments(self, parser):
        parser.add_argument(
            "file",
            metavar="FILE",
            type=non_empty,
            help="the CSV file (UTF-8, a byte order mark allowed), or - for stdin",
        )

    def handle(self, *args, file, **options):
        stdin = options.get("stdin") or sys.stdin.buffer
        try:
            summary = usage_import_file(path=file, stdin=stdin)
        except UsageImportRefused as refused:
            for line in refused.lines():
                self.stderr.write(line)
            sys.exit(1)
        self.stdout.write(str(summary))
