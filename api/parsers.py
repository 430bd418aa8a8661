"""The API's request bodies: JSON in UTF-8, at most ``API_MAX_BODY_BYTES``
(413 beyond, read no further), nested at most ``MAX_DEPTH`` deep, no NaN or
Infinity and no key twice in an object (the import's own JSON reader)."""

from django.conf import settings
from rest_framework.parsers import BaseParser

from api.errors import Invalid, TooLarge
from customers.importer import ImportRefused, parse_import_json
from customers.importer.parsing import KeysSeenTwice

# The deepest body of the API (an account with subscriptions, charges, a
# pricing's tiers) is 8 levels; nothing legitimate comes near this.
MAX_DEPTH = 32


def max_body_bytes():
    return settings.API_MAX_BODY_BYTES


def _check(value, depth=1):
    if depth > MAX_DEPTH:
        raise Invalid(f"The JSON body is nested more than {MAX_DEPTH} levels deep.")
    if isinstance(value, dict):
        if isinstance(value, KeysSeenTwice):
            raise Invalid(f"The JSON body gives the key {value.duplicate_keys[0]!r} twice.")
        for item in value.values():
            _check(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check(item, depth + 1)


class LimitedJSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = max_body_bytes()
        request = (parser_context or {}).get("request")
        length = request.META.get("CONTENT_LENGTH") if request is not None else None
        too_large = f"The request body is larger than {limit:,} bytes."
        try:
            if length and int(length) > limit:
                raise TooLarge(too_large)
        except ValueError:
            raise Invalid("The Content-Length header is not a number.") from None
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise TooLarge(too_large)
        try:
            data = parse_import_json(raw=raw)
        except ImportRefused as refused:
            raise Invalid(refused.problems[0].replace("the file", "the body")) from None
        _check(data)
        return data
