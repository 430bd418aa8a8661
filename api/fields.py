"""Strict serializer fields: a JSON value of the documented type or 400
(DRF's own fields also take ``"1"`` for 1 and ``1`` for ``"1"``)."""

import datetime

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.dates import DATE_PATTERN, date_range_problem


class StrictSerializer(serializers.Serializer):
    """A body object whose every key is a field: an unknown key is 400."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {
                        key: ["Unknown field; this body takes only the documented fields."]
                        for key in unknown
                    }
                )
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictCharField(serializers.CharField):
    default_error_messages = {"not_text": "Must be a JSON string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_text")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"not_integer": "Must be a whole JSON number."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("not_integer")
        return super().to_internal_value(data)


@extend_schema_field(OpenApiTypes.DATE)
class DateStringField(serializers.Field):
    """``YYYY-MM-DD`` between 2000-01-01 and 2099-12-31, as a date."""

    default_error_messages = {"invalid": "Must be a date YYYY-MM-DD."}

    def to_internal_value(self, data):
        if not isinstance(data, str) or not DATE_PATTERN.fullmatch(data):
            self.fail("invalid")
        try:
            day = datetime.date.fromisoformat(data)
        except ValueError:
            self.fail("invalid")
        problem = date_range_problem(day)
        if problem:
            raise serializers.ValidationError(f"The date {problem}.")
        return day

    def to_representation(self, value):
        return value.isoformat()


@extend_schema_field(
    {
        "oneOf": [
            {"type": "integer", "minimum": 1, "maximum": 31},
            {"type": "string", "enum": ["all"]},
        ]
    }
)
class BillCycleDayField(serializers.Field):
    """A day 1-31, or ``"all"``."""

    default_error_messages = {"invalid": 'Must be a whole number from 1 to 31 or "all".'}

    def to_internal_value(self, data):
        if data == "all":
            return data
        if isinstance(data, bool) or not isinstance(data, int) or not 1 <= data <= 31:
            self.fail("invalid")
        return data

    def to_representation(self, value):
        return value
