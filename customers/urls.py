from django.urls import path

import core.converters  # noqa: F401 - registers <number:...>
from customers import views

app_name = "customers"

urlpatterns = [
    path("", views.AccountListView.as_view(), name="account_list"),
    # Before the account pages: "import" is a path here, not a number.
    path("import/", views.AccountImportView.as_view(), name="account_import"),
    path("import/<int:pk>/", views.AccountUploadDetailView.as_view(), name="account_upload"),
    path(
        "import/<int:pk>/status/",
        views.AccountUploadStatusView.as_view(),
        name="account_upload_status",
    ),
    path("<number:number>/", views.AccountDetailView.as_view(), name="account_detail"),
    path(
        "<number:number>/bill-to-contact/",
        views.account_bill_to_contact_view,
        name="account_bill_to_contact",
    ),
]
