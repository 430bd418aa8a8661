"""The import's entry points: ``accounts_import_file`` (the command's: read,
parse, import) and ``accounts_import`` (a parsed document: validate, then
write, all or nothing)."""

import gc
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from django.conf import settings
from django.db import transaction

from customers.importer.parsing import parse_import_json, read_import_file
from customers.importer.validation import check_tax_codes, check_unique_numbers, document_rows
from customers.importer.values import ValueChecks
from customers.importer.writing import (
    ACCOUNT_NUMBER_FORMAT,
    SUBSCRIPTION_NUMBER_FORMAT,
    assign_charge_numbers,
    assign_numbers,
    insert_rows,
)
from customers.models import Account, Charge, Subscription


@dataclass(frozen=True)
class ImportSummary:
    accounts: int
    subscriptions: int
    charges: int
    # The numbers of the accounts imported, in the document's order (those
    # generated included): the API answers with the account it created.
    account_numbers: tuple[str, ...] = ()

    def __str__(self) -> str:
        return (
            f"imported {self.accounts} accounts, {self.subscriptions} subscriptions, "
            f"{self.charges} charges"
        )


def accounts_import(*, document: Any, consume: bool = False) -> ImportSummary:
    """Import accounts with their subscriptions and charges from ``document``,
    the parsed JSON of an import file. With ``consume`` the document's
    accounts are dropped from it as they are validated (it is left with
    ``None`` in their places), which bounds the memory of a large file.

    Transaction: the whole document is validated first (its shape and values,
    then its numbers against the database); on any problem ImportRefused is
    raised and nothing is written. Otherwise every row is inserted in bulk
    inside one ``transaction.atomic()``: all or nothing.

    Idempotency: none by design; importing is not an update, so importing the
    same file twice refuses the second time (its numbers exist). Generated
    numbers are chosen inside the transaction (charge numbers from the
    charge counter of customers.numbers, skipping those the file gives); a
    concurrent writer that takes one of them first makes the insert fail,
    which is reported as ImportRefused with nothing written.
    """
    with _garbage_collection_paused():
        check = ValueChecks()
        rows = document_rows(check, document, consume=consume)
        accounts = [row for row in rows if row is not None]
        subscriptions = [sub for acc in accounts for sub in acc.children if sub is not None]
        charges = [charge for sub in subscriptions for charge in sub.children if charge is not None]
        problems = check.problems

        with transaction.atomic():
            check_unique_numbers(problems, accounts, Account, "account")
            check_unique_numbers(problems, subscriptions, Subscription, "subscription")
            check_unique_numbers(problems, charges, Charge, "charge")
            tax_rate_ids = check_tax_codes(problems, accounts)
            problems.raise_if_any()
            assign_numbers(accounts, Account, ACCOUNT_NUMBER_FORMAT)
            assign_numbers(subscriptions, Subscription, SUBSCRIPTION_NUMBER_FORMAT)
            assign_charge_numbers(charges)
            insert_rows(accounts, tax_rate_ids)
    numbers = tuple(row.values["number"] for row in accounts)
    return ImportSummary(len(accounts), len(subscriptions), len(charges), numbers)


def accounts_import_file(*, path: str, stdin: IO[bytes] | None = None) -> ImportSummary:
    """Read, parse and import an import file (``-``: ``stdin``).

    Refuses a file larger than settings.IMPORT_MAX_BYTES before reading it.
    Transaction and idempotency: as accounts_import. Raises ImportRefused.
    """
    raw = read_import_file(path=path, stdin=stdin, max_bytes=settings.IMPORT_MAX_BYTES)
    with _garbage_collection_paused():
        document = parse_import_json(raw=raw)
        del raw  # the parsed document is what the import needs now
        return accounts_import(document=document, consume=True)


@contextmanager
def _garbage_collection_paused():
    """An import builds millions of small objects that all stay alive; on
    Python 3.11 the cyclic collector rescans them over and over (measured:
    it doubles the time of a 100,000-account import). Nothing here makes
    cycles, so collection can wait until the import is done."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
