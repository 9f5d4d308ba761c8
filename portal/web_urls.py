from django.urls import path

from portal import key_views, problem_views, views

app_name = "portal"

urlpatterns = [
    path("", views.home, name="home"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("keys/", key_views.key_list, name="keys"),
    path("keys/new/", key_views.key_create, name="key-create"),
    path("keys/<int:key_id>/revoke/", key_views.key_revoke, name="key-revoke"),
    path("keys/<int:key_id>/roll/", key_views.key_roll, name="key-roll"),
    path("problems/<slug:slug>/", problem_views.problem_type, name="problem-type"),
]
