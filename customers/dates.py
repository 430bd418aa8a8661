"""The migrations name the date validator by this path
(customers/migrations/0003, and any written before it moved): it lives in
core.dates, and code imports it from there."""

from core.dates import validate_date_in_range  # noqa: F401
