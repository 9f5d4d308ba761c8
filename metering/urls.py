from django.urls import path

from metering import views

app_name = "metering"

urlpatterns = [
    path("usage/", views.usage, name="usage"),
    path("usage/alerts/", views.alert_settings, name="alert-settings"),
]
