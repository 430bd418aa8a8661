"""/api/v1/ (INTERFACES.md, HTTP API)."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from api import views

app_name = "api"

urlpatterns = [
    path("", views.RootView.as_view(), name="root"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
    path("accounts/", views.AccountListView.as_view(), name="accounts"),
    path("accounts/<str:number>/", views.AccountDetailView.as_view(), name="account"),
    path(
        "subscriptions/<str:number>/", views.SubscriptionDetailView.as_view(), name="subscription"
    ),
    path(
        "subscriptions/<str:number>/changes/",
        views.SubscriptionChangeView.as_view(),
        name="subscription_changes",
    ),
    path("usage/", views.UsageView.as_view(), name="usage"),
    path("bill-runs/", views.BillRunListView.as_view(), name="bill_runs"),
    path("bill-runs/<str:number>/", views.BillRunDetailView.as_view(), name="bill_run"),
    path(
        "bill-runs/<str:number>/documents/",
        views.BillRunDocumentsView.as_view(),
        name="bill_run_documents",
    ),
    path(
        "bill-runs/<str:number>/failures/",
        views.BillRunFailuresView.as_view(),
        name="bill_run_failures",
    ),
    path("bill-runs/<str:number>/post/", views.BillRunPostView.as_view(), name="bill_run_post"),
    path(
        "bill-runs/<str:number>/cancel/", views.BillRunCancelView.as_view(), name="bill_run_cancel"
    ),
    path("bill-runs/<str:number>/retry/", views.BillRunRetryView.as_view(), name="bill_run_retry"),
    path("bill-runs/<str:number>/email/", views.BillRunEmailView.as_view(), name="bill_run_email"),
    path("documents/", views.DocumentListView.as_view(), name="documents"),
    path("documents/<str:number>/", views.DocumentDetailView.as_view(), name="document"),
    path("documents/<str:number>/pdf/", views.DocumentPdfView.as_view(), name="document_pdf"),
    path("documents/<str:number>/payments/", views.PaymentView.as_view(), name="document_payments"),
    path("webhooks/", views.WebhookListView.as_view(), name="webhooks"),
    path("webhooks/<str:endpoint_id>/", views.WebhookDetailView.as_view(), name="webhook"),
    path(
        "webhooks/<str:endpoint_id>/deliveries/",
        views.WebhookDeliveriesView.as_view(),
        name="webhook_deliveries",
    ),
    re_path(r"^.*$", views.NotFoundView.as_view(), name="not_found"),
]
