from functools import cache

from django.utils.functional import SimpleLazyObject

from notifications import selectors


def unread_notifications(request):
    """The signed-in user's unread count and latest notices, for the header.

    Lazy: a page that does not render the header (an htmx partial, an
    export) makes no query for them.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    @cache
    def header():
        return selectors.user_header_notices(user, request)

    return {
        "notifications_unread": SimpleLazyObject(lambda: header()[0]),
        "notifications_latest": SimpleLazyObject(lambda: header()[1]),
    }


# What this app adds to a bill run's page (templates/billruns/_live.html
# includes each with the page's context): the emails announcing the run's
# outcome. The run's page names no template of this app.
RUN_PAGE_PANELS = ("notifications/_run_deliveries.html",)


def run_page_panels(request):
    return {"run_page_panels": RUN_PAGE_PANELS}
