from django.urls import path

from notifications import views

app_name = "notifications"

urlpatterns = [
    path("<int:pk>/", views.notification_open, name="open"),
]
