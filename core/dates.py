"""The dates the product accepts (INTERFACES.md, "Numbers and dates, everywhere").

Every date a person or a file gives the product (target, invoice, start, end,
payment and schedule dates) lies between FIRST_DATE and LAST_DATE, and a
refusal names the range. Billing computes periods, due dates and schedule
occurrences some way past the dates it is given: a date near the end of the
calendar (9999-12-31) overflowed there ("year 10000 is out of range"), and
one near its start (0001-01-01) made a run bill two thousand years of
periods. The importer, the ``billrun`` command, the run, schedule and payment
forms and the services all check against this one range.
"""

import datetime
import re

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

FIRST_DATE = datetime.date(2000, 1, 1)
LAST_DATE = datetime.date(2099, 12, 31)
DATE_RANGE = f"between {FIRST_DATE.isoformat()} and {LAST_DATE.isoformat()}"

# Only the extended form, in ASCII digits: date.fromisoformat also reads
# "20260101" and "2026-W01-1", and ``\d`` matches other scripts' digits.
DATE_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def date_range_problem(day: datetime.date) -> str | None:
    """Why ``day`` is outside the accepted range (to follow "The date ..."), or None."""
    if FIRST_DATE <= day <= LAST_DATE:
        return None
    return f"must be {DATE_RANGE}, not {day.isoformat()}"


def payment_date_problem(day: datetime.date, *, today: datetime.date | None = None) -> str | None:
    """Why ``day`` cannot be a payment's date, or None: a payment is recorded
    once it was received, so its date is not after today (the site's time zone)."""
    problem = date_range_problem(day)
    if problem:
        return problem
    today = today or timezone.localdate()
    if day > today:
        return f"must not be after today ({today.isoformat()}), not {day.isoformat()}"
    return None


def parse_date(text: str, *, label: str = "The date") -> datetime.date:
    """``YYYY-MM-DD`` within the accepted range, or ValueError whose message
    says why ("'2026-02-30' is not a date (expected YYYY-MM-DD)", "The target
    date must be between 2000-01-01 and 2099-12-31, not 9999-12-31")."""
    try:
        if not DATE_PATTERN.fullmatch(text):
            raise ValueError(text)
        day = datetime.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (expected YYYY-MM-DD)") from None
    problem = date_range_problem(day)
    if problem:
        raise ValueError(f"{label} {problem}")
    return day


def validate_date_in_range(value):
    """Model and form validator: the date lies in the accepted range."""
    if isinstance(value, datetime.datetime):
        value = value.date()
    problem = date_range_problem(value)
    if problem:
        raise ValidationError(f"The date {problem}.", code="date_out_of_range")


class DateInRangeMixin:
    """For a form's DateField: refuses a date outside the accepted range, and
    tells the browser's date picker the range (``min`` and ``max``)."""

    first_date = FIRST_DATE
    last_date = LAST_DATE

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.validators.append(validate_date_in_range)

    def widget_attrs(self, widget):
        attrs = super().widget_attrs(widget)
        attrs.setdefault("min", self.first_date.isoformat())
        attrs.setdefault("max", self.last_date.isoformat())
        return attrs


class DateInRangeField(DateInRangeMixin, forms.DateField):
    pass


class PaymentDateField(DateInRangeField):
    """A payment's date: in the accepted range and not after today (the
    site's time zone), which is also the date picker's ``max``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.validators.append(validate_not_after_today)

    def __deepcopy__(self, memo):
        # Each form gets a copy of the field: today is the day it is drawn.
        result = super().__deepcopy__(memo)
        result.widget.attrs["max"] = timezone.localdate().isoformat()
        return result


def validate_not_after_today(value):
    today = timezone.localdate()
    if value > today:
        raise ValidationError(
            f"The payment date must not be after today ({today.isoformat()}), "
            f"not {value.isoformat()}.",
            code="date_in_the_future",
        )
