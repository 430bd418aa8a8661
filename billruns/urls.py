from django.urls import path

import core.converters  # noqa: F401 - registers <number:...>
from billruns import schedule_views, views

app_name = "billruns"

urlpatterns = [
    path("bill-runs/", views.BillRunListView.as_view(), name="list"),
    path("bill-runs/new/", views.billrun_create_view, name="new"),
    path("bill-runs/<number:number>/", views.BillRunDetailView.as_view(), name="detail"),
    path("bill-runs/<number:number>/progress/", views.billrun_progress_view, name="progress"),
    path("bill-runs/<number:number>/post/", views.billrun_post_view, name="post"),
    path("bill-runs/<number:number>/cancel/", views.billrun_cancel_view, name="cancel"),
    path("bill-runs/<number:number>/retry/", views.billrun_retry_view, name="retry"),
    path("bill-runs/<number:number>/email/", views.billrun_email_view, name="email"),
    path("bill-runs/<number:number>/delete/", views.billrun_delete_view, name="delete"),
    path(
        "bill-runs/<number:number>/create-run/",
        views.billrun_create_from_preview_view,
        name="create_from_preview",
    ),
    path("schedules/", schedule_views.ScheduleListView.as_view(), name="schedule_list"),
    path("schedules/new/", schedule_views.schedule_create_view, name="schedule_new"),
    path("schedules/<int:pk>/", schedule_views.schedule_detail_view, name="schedule_detail"),
    path("schedules/<int:pk>/edit/", schedule_views.schedule_edit_view, name="schedule_edit"),
    path("schedules/<int:pk>/pause/", schedule_views.schedule_pause_view, name="schedule_pause"),
    path("schedules/<int:pk>/resume/", schedule_views.schedule_resume_view, name="schedule_resume"),
    path("schedules/<int:pk>/cancel/", schedule_views.schedule_cancel_view, name="schedule_cancel"),
    path(
        "schedules/<int:pk>/preview/", schedule_views.schedule_preview_view, name="schedule_preview"
    ),
]
