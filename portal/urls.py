from django.urls import path

from portal.views import account, keys, metrics, organisation, pages, problems, quickstart

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
    path(
        "account/organisation/delete/",
        account.organisation_delete_view,
        name="organisation-delete",
    ),
    # The session's organisation and its people (portal/views/organisation.py).
    path("organisation/", organisation.organisation_settings, name="organisation"),
    path("organisation/rename/", organisation.organisation_rename, name="organisation-rename"),
    path("organisation/members/", organisation.members, name="members"),
    path(
        "organisation/members/<int:membership_id>/role/",
        organisation.membership_role_change_view,
        name="member-role",
    ),
    path(
        "organisation/members/<int:membership_id>/remove/",
        organisation.membership_remove_view,
        name="member-remove",
    ),
    path(
        "organisation/members/<int:membership_id>/transfer/",
        organisation.ownership_transfer_view,
        name="ownership-transfer",
    ),
    path("organisation/leave/", organisation.leave, name="organisation-leave"),
    path("organisation/alerts/", organisation.membership_alerts, name="member-alerts"),
    path("organisation/invitations/", organisation.invitation_create_view, name="invite"),
    path(
        "organisation/invitations/<int:invitation_id>/revoke/",
        organisation.invitation_revoke_view,
        name="invitation-revoke",
    ),
    path("organisations/new/", organisation.organisation_create_view, name="organisation-create"),
    path(
        "organisations/<int:account_id>/switch/",
        organisation.organisation_switch_view,
        name="organisation-switch",
    ),
    # An invitation email's link; open to visitors, who are sent to log in or sign up first.
    path("invitations/<str:token>/", organisation.invitation_accept_view, name="invitation-accept"),
    # The /healthz checks in words, for people (/healthz stays JSON, for machines).
    path("status/", pages.status, name="status"),
    # Browsers ask for /favicon.ico wherever a page names no icon (the admin, JSON answers).
    path("favicon.ico", pages.favicon, name="favicon"),
    # Prometheus's scrape, behind METRICS_TOKEN (a 404 when it is unset).
    path("metrics", metrics.metrics, name="metrics"),
]
