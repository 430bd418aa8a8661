"""A subscription's change forms, mounted by billing_site beside the
subscription page (billing/subscriptions/, customers.subscription_urls)."""

from django.urls import path

import core.converters  # noqa: F401 - registers <number:...>
from billruns import change_views

app_name = "subscription_changes"

urlpatterns = [
    path("<number:number>/add-charge/", change_views.AddChargeView.as_view(), name="add_charge"),
    path(
        "<number:number>/change-price/",
        change_views.ChangePriceView.as_view(),
        name="change_price",
    ),
    path(
        "<number:number>/remove-charge/",
        change_views.RemoveChargeView.as_view(),
        name="remove_charge",
    ),
    path("<number:number>/cancel/", change_views.CancelSubscriptionView.as_view(), name="cancel"),
]
