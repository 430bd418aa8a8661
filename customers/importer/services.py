"""The import's entry points: ``accounts_import_file`` (the command's: read,
parse, import) and ``accounts_import`` (a parsed document: validate, then
write, all or nothing)."""

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from django.conf import settings
from django.db import transaction

from customers.importer.parsing import parse_import_json
from customers.importer.streaming import (
    NotStreamable,
    check_encoding,
    import_file_opened,
    stream_accounts,
    whole_file,
)
from customers.importer.validation import FileChecks, document_accounts
from customers.importer.writing import NumbersToGive, row_spool
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
        checks = _checks()
        accounts = document_accounts(checks.values, document)
        objects = _consumed(accounts) if consume else iter(accounts)
        return _import(checks, objects, keep_numbers=True)


def accounts_import_file(*, path: str, stdin: IO[bytes] | None = None) -> ImportSummary:
    """Read and import an import file (``-``: ``stdin``), streamed: its
    accounts are parsed and validated one at a time (customers.importer
    .streaming), and the validated rows are kept on disk until they are
    written, so that memory does not grow with the file beyond the file's
    numbers (NumbersSeen). A file whose frame is not ``{"accounts": [...]}``
    alone is read whole and imported by ``accounts_import``: it is refused,
    with the problems it always had. The summary's ``account_numbers`` is
    left empty.

    Refuses a file larger than settings.IMPORT_MAX_BYTES before reading it.
    Transaction and idempotency: as accounts_import. Raises ImportRefused.
    """
    max_bytes = settings.IMPORT_MAX_BYTES
    with import_file_opened(path=path, stdin=stdin, max_bytes=max_bytes) as stream:
        check_encoding(stream)
        with _garbage_collection_paused():
            try:
                return _import(_checks(), stream_accounts(stream), keep_numbers=False)
            except NotStreamable:
                pass
            document = parse_import_json(raw=whole_file(stream))
        return accounts_import(document=document, consume=True)


def _checks() -> FileChecks:
    return FileChecks(Account, Subscription, Charge)


def _consumed(accounts: list) -> Iterator[Any]:
    for i in range(len(accounts)):
        obj, accounts[i] = accounts[i], None
        yield obj


def _import(checks: FileChecks, objects: Iterator[Any], *, keep_numbers: bool) -> ImportSummary:
    """The two passes: validate every account of ``objects`` (keeping the
    rows on disk while the file has no problem), then, in one transaction,
    check the numbers and tax codes against the database and write the rows
    a batch at a time."""
    spool = row_spool()
    try:
        for index, obj in enumerate(objects):
            row = checks.account(obj, index)
            if row is not None and checks.clean:
                spool.add(row)
        numbers: list[str] = []
        with transaction.atomic():
            tax_rate_ids = checks.check_database()
            to_give = NumbersToGive(
                taken_accounts=checks.accounts,
                taken_subscriptions=checks.subscriptions,
                taken_charges=checks.charges,
            )
            spool.write(to_give, tax_rate_ids, numbers if keep_numbers else None)
    finally:
        spool.close()
    return ImportSummary(*checks.counts, tuple(numbers))


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
