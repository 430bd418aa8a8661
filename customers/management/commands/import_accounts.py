from core.cli import FileImportCommand
from customers.importer import ImportRefused, accounts_import_file


class Command(FileImportCommand):
    help = (
        "Import accounts, subscriptions and charges from a JSON file in UTF-8 ('-' for "
        "standard input). The whole file is validated first; on any problem nothing is "
        "imported."
    )
    file_help = "the JSON file (UTF-8, a byte order mark allowed), or - for stdin"
    refused = ImportRefused

    def import_file(self, *, path, stdin):
        return accounts_import_file(path=path, stdin=stdin)
