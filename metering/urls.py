from django.urls import path

from metering import views

app_name = "metering"

urlpatterns = [
    path("usage/", views.usage, name="usage"),
    path("usage/export.csv", views.usage_csv, name="usage-csv"),
    path("usage/alerts/", views.alert_settings, name="alert-settings"),
]
