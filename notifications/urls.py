from django.urls import path

from notifications import views

app_name = "notifications"

urlpatterns = [
    path("<int:pk>/", views.notification_open, name="open"),
    path("read-all/", views.notifications_mark_all_read_view, name="mark_all_read"),
]
