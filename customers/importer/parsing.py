"""Reading an import file: its size limit, its encoding (UTF-8) and its JSON.

No database access. Anything malformed raises ImportRefused with one clean
message, never another exception.
"""

import codecs
import json
import os
from typing import IO, Any

from customers.importer.problems import ImportRefused


def read_import_file(*, path: str, stdin: IO[bytes] | None = None, max_bytes: int) -> bytes:
    """Read an import file (``-``: ``stdin``), refusing one over ``max_bytes``.

    A file's size is checked before it is read; standard input is read at
    most ``max_bytes + 1`` bytes, so an oversized stream is never held in
    memory. No database access. Raises ImportRefused.
    """
    if path == "-":
        data = stdin.read(max_bytes + 1)
        if isinstance(data, str):
            data = data.encode("utf-8", errors="surrogatepass")
        if len(data) > max_bytes:
            raise ImportRefused(
                [
                    f"standard input: larger than the import limit of {max_bytes} bytes "
                    "(IMPORT_MAX_BYTES); nothing was imported"
                ]
            )
        return data
    try:
        size = os.stat(path).st_size
        if size > max_bytes:
            raise ImportRefused(
                [
                    f"{path}: the file is {size} bytes, larger than the import limit of "
                    f"{max_bytes} bytes (IMPORT_MAX_BYTES); nothing was imported"
                ]
            )
        with open(path, "rb") as stream:
            data = stream.read(max_bytes + 1)
    except OSError as exc:
        raise ImportRefused([f"{path}: cannot read the file ({exc.strerror or exc})"]) from exc
    if len(data) > max_bytes:
        # The file grew between the stat and the read.
        raise ImportRefused(
            [f"{path}: larger than the import limit of {max_bytes} bytes (IMPORT_MAX_BYTES)"]
        )
    return data


class KeysSeenTwice(dict):
    """A JSON object in which some key appeared more than once."""

    duplicate_keys: list[str]


def _object_from_pairs(pairs: list[tuple[str, Any]]) -> dict:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    flagged = KeysSeenTwice(obj)
    seen: set[str] = set()
    flagged.duplicate_keys = [key for key, _ in pairs if key in seen or seen.add(key)]
    return flagged


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# What json.detect_encoding names when a file is not UTF-8, as people say it.
OTHER_ENCODINGS = {
    "utf-16": "UTF-16",
    "utf-16-be": "UTF-16 (big-endian)",
    "utf-16-le": "UTF-16 (little-endian)",
    "utf-32": "UTF-32",
    "utf-32-be": "UTF-32 (big-endian)",
    "utf-32-le": "UTF-32 (little-endian)",
}
ENCODING_RULE = "import files are UTF-8 text (a byte order mark is allowed)"


def decode_import_text(*, raw: bytes) -> str:
    """An import file's text. Import files are UTF-8, with or without a byte
    order mark; anything else (UTF-16, as some spreadsheet programs save,
    or bytes that are not UTF-8) raises ImportRefused saying so.

    json.loads would read UTF-16 and UTF-32 too, guessing from the first
    bytes: the import takes one encoding, the one its documentation names."""
    other = OTHER_ENCODINGS.get(json.detect_encoding(raw))
    if other:
        raise ImportRefused([f"the file is {other} text; {ENCODING_RULE}: save it as UTF-8"])
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # The codec counts from after the byte order mark.
        offset = exc.start + (len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0)
        raise ImportRefused(
            [
                f"the file is not UTF-8 text (byte 0x{raw[offset]:02x} at offset {offset} "
                f"is not UTF-8); {ENCODING_RULE}"
            ]
        ) from exc


def parse_import_json(*, raw: bytes) -> Any:
    """Parse an import file's bytes into Python values.

    Any malformed input (encoding, syntax, NaN/Infinity, numbers too long to
    convert, nesting too deep) raises ImportRefused with one clean message,
    never another exception. No database access.
    """
    text = decode_import_text(raw=raw)
    try:
        return json.loads(
            text, object_pairs_hook=_object_from_pairs, parse_constant=_refuse_constant
        )
    except json.JSONDecodeError as exc:
        raise ImportRefused(
            [f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"]
        ) from exc
    except RecursionError as exc:
        raise ImportRefused(["invalid JSON: nested too deeply"]) from exc
    except ValueError as exc:
        # Integers with thousands of digits, NaN/Infinity literals.
        raise ImportRefused([f"invalid JSON: {exc}"]) from exc
