"""What the project's management commands share about their command line.

Option values: an empty or malformed value is a malformed command line (exit
2), never a default: ``--account "$ACCOUNT"`` with an empty variable must not
bill every account, nor ``--user ''`` act as the first superuser. Each type
below raises ``argparse.ArgumentTypeError``, which argparse reports as
"argument --account: must not be empty".

Standard output: a command piped into a reader that stops early
(``billrun list | head -1``) finds its standard output closed. That is the
reader's choice, not a failure: the command ends quietly (see "Note on
SIGPIPE" in the Python documentation of ``signal``).
"""

import argparse
import os
import sys

from django.core.management.base import BaseCommand

from core.dates import parse_date


def non_empty(text: str) -> str:
    """A value that must say something: a number, a user name, a file."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def date_argument(text: str):
    """A date ``YYYY-MM-DD`` between 2000-01-01 and 2099-12-31."""
    try:
        return parse_date(text.strip(), label="the date")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def whole_number(low: int, high: int, what: str):
    """An integer from ``low`` to ``high`` (argparse's ``int`` would take
    ``0`` or ``-1`` and leave the range to the caller)."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {what} from {low} to {high}, not {text!r}")
        return value

    return parse


def checked(parse, metavar: str | None = None):
    """An argument type from a function that returns the value of a text or
    raises ValueError saying why it is none (a tax rate's code or rate): the
    reason becomes argparse's "argument RATE: <reason>", exit 2."""

    def parse_argument(text: str):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse_argument.__name__ = metavar or parse.__name__
    return parse_argument


class ReaderMayLeave:
    """A command's standard output whose reader may stop reading: a write
    or flush after that is dropped instead of raising BrokenPipeError, and
    ``reader_gone`` says so (a long listing stops early)."""

    def __init__(self, stream):
        self.stream = stream
        self.reader_gone = False

    def write(self, text):
        if not self.reader_gone:
            try:
                self.stream.write(text)
            except BrokenPipeError:
                self._gone()
        return len(text)

    def flush(self):
        if not self.reader_gone:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._gone()

    def isatty(self):
        return self.stream.isatty()

    def _gone(self):
        self.reader_gone = True
        if self.stream is sys.stdout:
            # Python flushes sys.stdout once more when it exits; pointed at
            # /dev/null, that flush succeeds instead of printing "Exception
            # ignored ... BrokenPipeError" and exiting 120.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)


class QuietWhenStdoutClosed:
    """A BaseCommand mixin: when the reader of standard output goes away
    (``| head -1``), the lines nobody reads are dropped, without a
    BrokenPipeError traceback; the command's exit status is what it would
    have been (0, as ``head`` expects, or 1 for a refusal).

    The work goes on: ``billrun create --wait | head -1`` still runs the run
    it created, and still exits 1 when the run ends in Error.
    """

    def execute(self, *args, **options):
        stdout = ReaderMayLeave(options.get("stdout") or sys.stdout)
        options["stdout"] = stdout
        try:
            return super().execute(*args, **options)
        finally:
            stdout.flush()

    @property
    def stdout_reader_gone(self):
        return getattr(self.stdout, "reader_gone", False)


class FileImportCommand(QuietWhenStdoutClosed, BaseCommand):
    """An import of one file (or '-' for standard input): the whole file is
    checked first; refused, every problem goes to stderr and the exit status
    is 1; accepted, the summary goes to stdout. A subclass names the file's
    kind (``file_help``), the import (``import_file(path=, stdin=)``) and the
    exception it refuses with (``refused``, which has ``lines()``)."""

    file_help = ""
    refused = Exception
    # Tests hand in a byte stream for '-' instead of the process's stdin.
    stealth_options = ("stdin",)

    def import_file(self, *, path, stdin):
        raise NotImplementedError

    def add_arguments(self, parser):
        parser.add_argument("file", metavar="FILE", type=non_empty, help=self.file_help)

    def handle(self, *args, file, **options):
        stdin = options.get("stdin") or sys.stdin.buffer
        try:
            summary = self.import_file(path=file, stdin=stdin)
        except self.refused as refused:
            for line in refused.lines():
                self.stderr.write(line)
            sys.exit(1)
        self.stdout.write(str(summary))
