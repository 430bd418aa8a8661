from django.urls import path

import core.converters  # noqa: F401 - registers <number:...>
from customers import views

app_name = "customers"

urlpatterns = [
    path("", views.AccountListView.as_view(), name="account_list"),
    path("<number:number>/", views.AccountDetailView.as_view(), name="account_detail"),
    path(
        "<number:number>/bill-to-contact/",
        views.account_bill_to_contact_view,
        name="account_bill_to_contact",
    ),
]
