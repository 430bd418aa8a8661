"""The API's one error shape (INTERFACES.md, HTTP API):
``{"error": {"code", "message", "fields"}}`` with the code's status."""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response


class ApiError(exceptions.APIException):
    """An error with its code, status and message, and fields when some
    field of the request is wrong."""

    def __init__(self, message, *, fields=None):
        super().__init__(message)
        self.message = str(message)
        self.fields = fields or {}


class Invalid(ApiError):
    status_code, default_code = status.HTTP_400_BAD_REQUEST, "invalid"


class Refused(ApiError):
    """What the rules refuse: the message is the command's."""

    status_code, default_code = status.HTTP_409_CONFLICT, "refused"


class TooLarge(ApiError):
    status_code, default_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, "too_large"


class IdempotencyMismatch(ApiError):
    status_code, default_code = 422, "idempotency_mismatch"


class NotFound(ApiError):
    status_code, default_code = status.HTTP_404_NOT_FOUND, "not_found"


# DRF's own exceptions, by class: (code, message when DRF's is not for a person).
CODES = [
    (exceptions.NotAuthenticated, "unauthenticated"),
    (exceptions.AuthenticationFailed, "unauthenticated"),
    (exceptions.PermissionDenied, "forbidden"),
    (exceptions.NotFound, "not_found"),
    (exceptions.Throttled, "throttled"),
    (exceptions.MethodNotAllowed, "method_not_allowed"),
    (exceptions.NotAcceptable, "not_acceptable"),
    (exceptions.UnsupportedMediaType, "unsupported_media_type"),
    (exceptions.ParseError, "invalid"),
    (exceptions.ValidationError, "invalid"),
]


def error_body(code, message, fields=None):
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def _flatten(detail, prefix=""):
    """A serializer's errors as ``{"field": ["message", ...]}``, nested
    fields named by their path (``records[3].quantity``)."""
    fields = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            if isinstance(key, int):  # a list's item (ListField)
                fields.update(_flatten(value, f"{prefix}[{key}]"))
                continue
            name = "" if key == "non_field_errors" else str(key)
            path = f"{prefix}.{name}" if prefix and name else (prefix or name)
            fields.update(_flatten(value, path))
    elif isinstance(detail, list) and detail and all(isinstance(d, str) for d in detail):
        fields.setdefault(prefix or "__all__", []).extend(str(d) for d in detail)
    elif isinstance(detail, list):
        for index, value in enumerate(detail):
            if value:
                fields.update(_flatten(value, f"{prefix}[{index}]"))
    else:
        fields.setdefault(prefix or "__all__", []).append(str(detail))
    return fields


def api_exception_handler(exc, context):
    """DRF's exception handler for every API view: each error in the one shape."""
    if isinstance(exc, Http404):
        exc = NotFound("Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, ApiError):
        response = Response(
            error_body(exc.default_code, exc.message, exc.fields), status=exc.status_code
        )
    elif isinstance(exc, exceptions.APIException):
        code = next((c for cls, c in CODES if isinstance(exc, cls)), "invalid")
        if isinstance(exc, exceptions.ValidationError):
            fields = _flatten(exc.detail)
            first = next(iter(fields.items()), ("", ["Invalid input."]))
            message = first[1][0] if first[0] in ("", "__all__") else f"{first[0]}: {first[1][0]}"
            body = error_body(code, message, fields)
        else:
            body = error_body(code, str(exc.detail))
        response = Response(body, status=exc.status_code)
    else:
        return None
    headers = getattr(exc, "auth_header", None)
    if headers:
        response["WWW-Authenticate"] = headers
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        response["Retry-After"] = str(int(exc.wait))
    return response
