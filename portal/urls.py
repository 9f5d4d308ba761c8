from django.urls import path

from portal.views import keys, metrics, pages, problems

app_name = "portal"

urlpatterns = [
    path("", pages.home, name="home"),
    path("dashboard/", pages.dashboard, name="dashboard"),
    path("keys/", keys.key_list, name="keys"),
    path("keys/new/", keys.key_create, name="key-create"),
    path("keys/<int:key_id>/revoke/", keys.key_revoke, name="key-revoke"),
    path("keys/<int:key_id>/roll/", keys.key_roll, name="key-roll"),
    path("problems/<slug:slug>/", problems.problem_type, name="problem-type"),
    # Prometheus's scrape, behind METRICS_TOKEN (a 404 when it is unset).
    path("metrics", metrics.metrics, name="metrics"),
]
