"""/billing/usage/: usage records and the usage files uploaded there."""

from django.urls import path

from invoices import views

app_name = "usage"

urlpatterns = [
    path("", views.UsageRecordListView.as_view(), name="list"),
    path("uploads/<int:pk>/", views.UsageUploadDetailView.as_view(), name="upload"),
    path("uploads/<int:pk>/status/", views.UsageUploadStatusView.as_view(), name="upload_status"),
]
