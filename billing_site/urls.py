from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="billruns:list", permanent=False)),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("billing/", include("billruns.urls")),
    path("billing/invoices/", include("invoices.urls")),
    path("billing/accounts/", include("customers.urls")),
    path("billing/usage/", include("invoices.usage_urls")),
    path("billing/subscriptions/", include("customers.subscription_urls")),
    path("billing/subscriptions/", include("billruns.change_urls")),
    path("notifications/", include("notifications.urls")),
    path("api/v1/", include("api.urls")),
    path("admin/", admin.site.urls),
]
