from django.urls import path

from invoices import views

app_name = "invoices"

urlpatterns = [
    path("", views.DocumentListView.as_view(), name="list"),
    path("<str:number>/", views.DocumentDetailView.as_view(), name="detail"),
    path("<str:number>/pdf/", views.document_pdf_view, name="pdf"),
    path("<str:number>/post/", views.document_post_view, name="post"),
    path("<str:number>/payments/", views.payment_create_view, name="payment_create"),
]
