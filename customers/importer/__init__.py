"""Loading accounts, subscriptions and charges from an import document.

The format is the one of ``manage.py import_accounts`` (INTERFACES.md,
"Loading customers"). An import is all or nothing: the whole document is
validated before anything is written, every problem is reported with its JSON
path, and the rows are then inserted in bulk in one transaction (COPY on
PostgreSQL, ``bulk_create`` elsewhere).
Importing is not an update: a number that is already in use is a problem.

- ``parsing.py``: the file: its size limit, its encoding, its JSON;
- ``values.py``: the checks of one value (type, length, format, range);
- ``validation.py``: the rules of each record and across records (numbers);
- ``writing.py``: generated numbers, the bulk inserts;
- ``services.py``: the entry points, and their transaction;
- ``problems.py``: ImportRefused and the problems it reports.
"""

from customers.importer.parsing import decode_import_text, parse_import_json, read_import_file
from customers.importer.problems import MAX_REPORTED_PROBLEMS, ImportRefused
from customers.importer.services import ImportSummary, accounts_import, accounts_import_file

__all__ = [
    "MAX_REPORTED_PROBLEMS",
    "ImportRefused",
    "ImportSummary",
    "accounts_import",
    "accounts_import_file",
    "decode_import_text",
    "parse_import_json",
    "read_import_file",
]
