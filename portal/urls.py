from django.urls import path

from portal.views import account, keys, metrics, pages, problems, quickstart

app_name = "portal"

urlpatterns = [
    path("", pages.home, name="home"),
    path("dashboard/", pages.dashboard, name="dashboard"),
    path("keys/", keys.key_list, name="keys"),
    path("keys/new/", keys.key_create, name="key-create"),
    path("keys/<int:key_id>/revoke/", keys.key_revoke, name="key-revoke"),
    path("keys/<int:key_id>/roll/", keys.key_roll, name="key-roll"),
    path("problems/<slug:slug>/", problems.problem_type, name="problem-type"),
    path("quickstart/", quickstart.quickstart, name="quickstart"),
    path("account/", account.account_settings, name="account"),
    path("account/export/<str:name>", account.account_export, name="account-export"),
    path("account/delete/", account.account_delete_view, name="account-delete"),
    # The /healthz checks in words, for people (/healthz stays JSON, for machines).
    path("status/", pages.status, name="status"),
    # Browsers ask for /favicon.ico wherever a page names no icon (the admin, JSON answers).
    path("favicon.ico", pages.favicon, name="favicon"),
    # Prometheus's scrape, behind METRICS_TOKEN (a 404 when it is unset).
    path("metrics", metrics.metrics, name="metrics"),
]
