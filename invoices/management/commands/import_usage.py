from core.cli import FileImportCommand
from invoices.usage import UsageImportRefused, usage_import_file


class Command(FileImportCommand):
    help = (
        "Record usage from a CSV file in UTF-8 ('-' for standard input) with the header "
        "id,charge,date,quantity. The whole file is validated first; on any problem nothing "
        "is recorded. A record already recorded with the same values counts once."
    )
    file_help = "the CSV file (UTF-8, a byte order mark allowed), or - for stdin"
    refused = UsageImportRefused

    def import_file(self, *, path, stdin):
        return usage_import_file(path=path, stdin=stdin)
