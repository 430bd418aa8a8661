from django.urls import path

from customers import views

app_name = "customers"

urlpatterns = [
    path("", views.AccountListView.as_view(), name="account_list"),
    path("<str:number>/", views.AccountDetailView.as_view(), name="account_detail"),
]
