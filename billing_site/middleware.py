"""Request guards shared by every page, the admin's included."""

from django.http import JsonResponse
from django.shortcuts import render
from django.utils.cache import patch_cache_control

# No search, filter or page parameter of this product needs more; a longer
# one is a mistake or an attack (a 50,000-character search is "LIKE pattern
# too complex" on SQLite, and seconds of work on PostgreSQL).
MAX_QUERY_VALUE_LENGTH = 1000


class BoundedQueryMiddleware:
    """Answer 400, with a page that says why, to a query string value longer
    than MAX_QUERY_VALUE_LENGTH characters, before any view runs."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        for name, values in request.GET.lists():
            if any(len(value) > MAX_QUERY_VALUE_LENGTH for value in values):
                problem = (
                    f"The value of “{name[:40]}” is longer than "
                    f"{MAX_QUERY_VALUE_LENGTH:,} characters."
                )
                if request.path.startswith("/api/"):
                    # The API's one error shape (docs/api.md).
                    return JsonResponse(
                        {"error": {"code": "invalid", "message": problem, "fields": {}}},
                        status=400,
                    )
                return render(
                    request,
                    "400.html",
                    {"problem": problem},
                    status=400,
                )
        return self.get_response(request)


class PrivateCacheMiddleware:
    """Mark every response to a signed-in user ``Cache-Control: private,
    no-store``: its pages, exports and PDFs hold customers' accounts and
    amounts, which neither a shared proxy nor the browser's disk (a shared
    computer, the back button after signing out) may keep.

    Static files never reach it (whitenoise answers them first), and the
    sign-in page is Django's own never_cache view.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            patch_cache_control(response, private=True, no_store=True)
        return response
