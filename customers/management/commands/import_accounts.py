import sys

from django.core.management.base import BaseCommand

from customers.importer import ImportRefused, accounts_import_file


class Command(BaseCommand):
    help = (
        "Import accounts, subscriptions and charges from a JSON file ('-' for standard "
        "input). The whole file is validated first; on any problem nothing is imported."
    )
    # Tests hand in a byte stream for '-' instead of the process's stdin.
    stealth_options = ("stdin",)

    def add_arguments(self, parser):
        parser.add_argument("file", metavar="FILE", help="the JSON file, or - for stdin")

    def handle(self, *args, file, **options):
        stdin = options.get("stdin") or sys.stdin.buffer
        try:
            summary = accounts_import_file(path=file, stdin=stdin)
        except ImportRefused as refused:
            for line in refused.lines():
                self.stderr.write(line)
            sys.exit(1)
        self.stdout.write(str(summary))
