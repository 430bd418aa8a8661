"""Reading an import file a piece at a time: its accounts one by one, never
the whole file in memory.

The JSON is parsed by the standard library's decoder (``raw_decode``, one
account at a time), so every value, duplicate key, NaN, over-long integer and
syntax error is read exactly as ``parse_import_json`` reads the whole file,
and an error is reported at the same line and column. Only the frame of the
file is read here: ``{"accounts": [`` ... ``]}``. A file with anything else
in its frame (another key, a top level that is not that object, trailing
data) is not streamed: ``stream_accounts`` raises NotStreamable, and the
caller reads it whole, which reports what is wrong with it as before. Such a
file is always refused.

No database access. Malformed input raises ImportRefused.
"""

import codecs
import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from customers.importer.parsing import (
    ENCODING_RULE,
    OTHER_ENCODINGS,
    _object_from_pairs,
    _refuse_constant,
)
from customers.importer.problems import ImportRefused

# Bytes read at a time. An account is a few hundred bytes; a read of this
# size holds thousands of them.
CHUNK_BYTES = 1 << 20

_DECODER = json.JSONDecoder(object_pairs_hook=_object_from_pairs, parse_constant=_refuse_constant)
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_FRAME_START = re.compile(r'[ \t\n\r]*\{[ \t\n\r]*"accounts"[ \t\n\r]*:[ \t\n\r]*\[')
_FRAME_END = re.compile(r"[ \t\n\r]*\}[ \t\n\r]*")
# A token cut by the end of what has been read fails within this many
# characters of it (an escape, a literal, a number's exponent).
_CUT_MARGIN = 16


class NotStreamable(Exception):
    """The file's frame is not ``{"accounts": [...]}``: read it whole."""


@contextmanager
def import_file_opened(*, path: str, stdin: IO[bytes] | None, max_bytes: int):
    """The import file (``-``: ``stdin``) as a seekable binary file, read at
    most ``max_bytes`` (ImportRefused beyond, with read_import_file's
    messages). Standard input is copied to a temporary file first, so that
    the import can read it twice."""
    if path == "-":
        with tempfile.TemporaryFile() as spool:
            copied = 0
            while True:
                data = stdin.read(min(CHUNK_BYTES, max_bytes + 1 - copied))
                if not data:
                    break
                if isinstance(data, str):
                    data = data.encode("utf-8", errors="surrogatepass")
                copied += len(data)
                if copied > max_bytes:
                    raise ImportRefused(
                        [
                            f"standard input: larger than the import limit of {max_bytes} "
                            "bytes (IMPORT_MAX_BYTES); nothing was imported"
                        ]
                    )
                spool.write(data)
            spool.seek(0)
            yield spool
        return
    try:
        size = os.stat(path).st_size
        if size > max_bytes:
            raise ImportRefused(
                [
                    f"{path}: the file is {size} bytes, larger than the import limit of "
                    f"{max_bytes} bytes (IMPORT_MAX_BYTES); nothing was imported"
                ]
            )
        stream = open(path, "rb")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise ImportRefused([f"{path}: cannot read the file ({exc.strerror or exc})"]) from exc
    with stream:
        try:
            grown = os.fstat(stream.fileno()).st_size > max_bytes
        except OSError:
            grown = False
        if grown:
            # The file grew between the stat and the open.
            raise ImportRefused(
                [f"{path}: larger than the import limit of {max_bytes} bytes (IMPORT_MAX_BYTES)"]
            )
        yield stream


def whole_file(stream: IO[bytes]) -> bytes:
    """The file's bytes, for the files that are not streamed."""
    stream.seek(0)
    return stream.read()


def check_encoding(stream: IO[bytes]) -> None:
    """Refuse a file that is not UTF-8, as decode_import_text does (the same
    messages, the same offsets), reading it a chunk at a time."""
    stream.seek(0)
    head = stream.read(4)
    other = OTHER_ENCODINGS.get(json.detect_encoding(head))
    if other:
        raise ImportRefused([f"the file is {other} text; {ENCODING_RULE}: save it as UTF-8"])
    stream.seek(0)
    for _ in _texts(stream):
        pass


def _texts(stream: IO[bytes]) -> Iterator[str]:
    """The file's text (after a byte order mark), a chunk at a time; a chunk
    never ends inside a character."""
    stream.seek(0)
    offset = 0  # of ``data`` in the file
    data = stream.read(CHUNK_BYTES)
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
        offset = len(codecs.BOM_UTF8)
    while data:
        more = stream.read(CHUNK_BYTES)
        try:
            text = data.decode("utf-8")
            tail = b""
        except UnicodeDecodeError as exc:
            # A character cut by the end of the chunk: keep its bytes for the next.
            if more and exc.reason == "unexpected end of data" and exc.start >= len(data) - 3:
                text = data[: exc.start].decode("utf-8")
                tail = data[exc.start :]
            else:
                where = offset + exc.start
                raise ImportRefused(
                    [
                        f"the file is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                        f"{where} is not UTF-8); {ENCODING_RULE}"
                    ]
                ) from exc
        yield text
        offset += len(data) - len(tail)
        data = tail + more


class _Text:
    """What has been read of the file's text and not yet parsed, with where
    it starts (line, and the length of the line before it) for messages."""

    def __init__(self, stream: IO[bytes]):
        self._chunks = _texts(stream)
        self.buffer = ""
        self.eof = False
        self.lines_before = 0  # newlines before the buffer
        self.column_before = 0  # characters after the last of them, before the buffer

    def read_more(self, start: int) -> int:
        """Drop the buffer before ``start``, read another chunk; returns the
        new position of ``start`` (0). False at the end of the file."""
        dropped = self.buffer[:start]
        newlines = dropped.count("\n")
        if newlines:
            self.lines_before += newlines
            self.column_before = len(dropped) - dropped.rfind("\n") - 1
        else:
            self.column_before += len(dropped)
        self.buffer = self.buffer[start:]
        if not self.eof:
            chunk = next(self._chunks, None)
            if chunk is None:
                self.eof = True
            else:
                self.buffer += chunk
        return 0

    def fill(self, start: int, count: int) -> int:
        """Make sure ``count`` characters from ``start`` are read (or the
        file ends); returns the new position of ``start``."""
        while len(self.buffer) - start < count and not self.eof:
            start = self.read_more(start)
        return start

    def refused(self, exc: json.JSONDecodeError) -> ImportRefused:
        """The syntax error as parse_import_json words it for the whole file."""
        pos = exc.pos
        lineno = self.lines_before + self.buffer.count("\n", 0, pos) + 1
        newline = self.buffer.rfind("\n", 0, pos)
        colno = pos - newline if newline >= 0 else self.column_before + pos + 1
        return ImportRefused([f"invalid JSON at line {lineno}, column {colno}: {exc.msg}"])


def _value(text: _Text, pos: int) -> tuple[Any, int, int]:
    """Parse the value at ``pos``; returns it, the new position of ``pos``
    and its end, reading more of the file while the value may be cut."""
    while True:
        try:
            value, end = _DECODER.raw_decode(text.buffer, pos)
        except json.JSONDecodeError as exc:
            cut = exc.pos >= len(text.buffer) - _CUT_MARGIN or exc.msg.startswith(
                "Unterminated string"
            )
            if cut and not text.eof:
                pos = _grow(text, pos)
                continue
            raise text.refused(exc) from exc
        except RecursionError as exc:
            raise ImportRefused(["invalid JSON: nested too deeply"]) from exc
        except ValueError as exc:
            # Integers with thousands of digits, NaN/Infinity literals.
            raise ImportRefused([f"invalid JSON: {exc}"]) from exc
        if end >= len(text.buffer) and not text.eof:
            # A number may go on in the next chunk.
            pos = _grow(text, pos)
            continue
        return value, pos, end


def _grow(text: _Text, pos: int) -> int:
    """Read at least as much again as the buffer holds from ``pos`` (a value
    longer than a chunk is re-parsed a bounded number of times)."""
    wanted = max(len(text.buffer) - pos, CHUNK_BYTES) * 2
    return text.fill(pos, wanted)


def _separator_refused(text: _Text, end: int) -> ImportRefused:
    """What the decoder says of the array after the value that ends at
    ``end``: parsed again as ``[0 `` followed by the same text, the decoder's
    own array rules word the error, as for the whole file (the space ends
    the ``0``, which the text could otherwise go on)."""
    probe = "[0 " + text.buffer[end:]
    try:
        _DECODER.raw_decode(probe, 0)
    except json.JSONDecodeError as exc:
        shifted = json.JSONDecodeError(exc.msg, text.buffer, exc.pos - 3 + end)
        return text.refused(shifted)
    except (RecursionError, ValueError):
        pass
    raise NotStreamable


def _skip_white_space(text: _Text, anchor: int, pos: int) -> tuple[int, int]:
    """Skip white space from ``pos``, reading more as needed but keeping the
    buffer from ``anchor``; returns both positions, shifted as the buffer was."""
    while True:
        pos = _WHITESPACE.match(text.buffer, pos).end()
        if pos < len(text.buffer) or text.eof:
            return anchor, pos
        offset = pos - anchor
        anchor = text.fill(anchor, len(text.buffer) - anchor + 1)
        pos = anchor + offset


def stream_accounts(stream: IO[bytes]) -> Iterator[Any]:
    """The parsed values of the file's ``accounts`` array, one at a time.

    Raises NotStreamable (before or after yielding) when the file's frame is
    not ``{"accounts": [...]}`` with nothing else; ImportRefused on a syntax
    error inside the array, worded as parse_import_json words it."""
    text = _Text(stream)
    text.fill(0, CHUNK_BYTES)
    frame = _FRAME_START.match(text.buffer)
    if frame is None:
        raise NotStreamable
    _, pos = _skip_white_space(text, frame.end(), frame.end())
    if text.buffer.startswith("]", pos):
        pos += 1
    else:
        while True:
            value, pos, end = _value(text, pos)
            yield value
            anchor, pos = _skip_white_space(text, end, end)
            if text.buffer.startswith("]", pos):
                pos += 1
                break
            if not text.buffer.startswith(",", pos):
                raise _separator_refused(text, anchor)
            anchor, pos = _skip_white_space(text, anchor, pos + 1)
            if text.buffer.startswith("]", pos) or pos >= len(text.buffer):
                raise _separator_refused(text, anchor)
    # The rest: the object's closing brace, and nothing but white space.
    while not text.eof:
        pos = text.read_more(pos)
    if _FRAME_END.fullmatch(text.buffer, pos) is None:
        raise NotStreamable
