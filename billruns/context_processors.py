from django.urls import reverse

from billruns.change_views import CHANGE_PERMISSION

CHANGE_LINKS = ("add_charge", "change_price", "remove_charge", "cancel")


def subscription_change_links(request):
    """The subscription page's buttons to its change forms (this app's
    pages: customers may not name them), for a user who may change it.

    Only on that page (``subscriptions:detail``); the page shows them while
    the subscription and its account are Active (the rules refuse any
    change otherwise)."""
    match = getattr(request, "resolver_match", None)
    if match is None or match.view_name != "subscriptions:detail":
        return {}
    user = getattr(request, "user", None)
    if user is None or not user.has_perm(CHANGE_PERMISSION):
        return {}
    number = match.kwargs["number"]
    return {
        "subscription_change_links": {
            name: reverse(f"subscription_changes:{name}", args=[number]) for name in CHANGE_LINKS
        }
    }
