from django.urls import path

import core.converters  # noqa: F401 - registers <number:...>
from invoices import views

app_name = "invoices"

urlpatterns = [
    path("", views.DocumentListView.as_view(), name="list"),
    path("<number:number>/", views.DocumentDetailView.as_view(), name="detail"),
    path("<number:number>/pdf/", views.document_pdf_view, name="pdf"),
    path("<number:number>/post/", views.document_post_view, name="post"),
    path("<number:number>/payments/", views.payment_create_view, name="payment_create"),
    path(
        "<number:number>/applications/",
        views.credit_application_create_view,
        name="credit_application_create",
    ),
]
