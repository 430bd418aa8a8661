"""The subscription pages, mounted at billing/subscriptions/ (billing_site.urls)."""

from django.urls import path

import core.converters  # noqa: F401 - registers <number:...>
from customers import views

app_name = "subscriptions"

urlpatterns = [
    path("<number:number>/", views.SubscriptionDetailView.as_view(), name="detail"),
]
