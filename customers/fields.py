"""The migrations name the money field by this path (customers/migrations/0004,
invoices/migrations/0010, and any written before the field moved): it lives
in core.fields, and code imports it from there."""

from core.fields import ExactDecimalField  # noqa: F401
