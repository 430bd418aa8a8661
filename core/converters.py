"""The URL converter for the numbers of accounts, runs and documents."""

from django.urls import register_converter


class NumberConverter:
    """A number as the apps store one (their numbers have no slash,
    backslash or control character). Anything else in its place is a
    404, not a database error (PostgreSQL refuses a NUL in a text value)."""

    regex = r"[^/\\\x00-\x1f\x7f]+"

    def to_python(self, value):
        return value

    def to_url(self, value):
        return value


register_converter(NumberConverter, "number")
