"""Operators edit upstreams and endpoints in the admin: each change audited, archived
endpoints filtered, where calls go settable only with the URL permission, the signing secret
never in a list."""

import pytest

from gateway.models import Endpoint
from portal.models import AuditEntry
from tests.factories import EndpointFactory, StaffUserFactory, UpstreamFactory, UserFactory

pytestmark = pytest.mark.django_db

ENDPOINT_FORM = {
    "summary": "",
    "method": "GET",
    "public_path": "/echo/{word}",
    "upstream_path": "/echo/{word}",
    "cost": "1",
    "max_cost": "1",
    "scope": "",
    "timeout_seconds": "",
    "billable_statuses": "200-299",
}


def test_endpoint_edit_is_saved_and_audited(client):
    operator = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(operator)
    endpoint = EndpointFactory(operation_id="echo", public_path="/echo/{word}")

    response = client.post(
        f"/admin/gateway/endpoint/{endpoint.pk}/change/",
        {
            **ENDPOINT_FORM,
            "cost": "2",
            "max_cost": "8",
            "scope": "compute",
            "billable_statuses": "200-299, 404",
        },
    )

    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.cost, endpoint.max_cost, endpoint.scope) == (2, 8, "compute")
    assert endpoint.billable_statuses == [*range(200, 300), 404]
    [entry] = AuditEntry.objects.filter(action="gateway.endpoint_change")
    assert entry.actor == operator
    assert entry.target == f"endpoint {endpoint.meter_name}"
    assert entry.before == {
        "cost": 1,
        "max_cost": 1,
        "scope": "",
        "billable_statuses": list(range(200, 300)),
    }
    assert entry.after["max_cost"] == 8


def test_endpoint_edit_breaking_a_rule_is_refused_with_the_reason(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    endpoint = EndpointFactory(operation_id="echo", public_path="/echo/{word}")
    EndpointFactory(operation_id="taken", public_path="/shout/{text}")

    for changes, message in [
        ({"cost": "5", "max_cost": "2"}, "at least the cost"),
        ({"upstream_path": "/echo/{other}"}, "same parameters"),
        ({"public_path": "/shout/{word}"}, "already answers"),
        ({"public_path": "/echo/../{word}"}, "&#x27;..&#x27;"),
        ({"billable_statuses": "2xx"}, "not a status code"),
    ]:
        response = client.post(
            f"/admin/gateway/endpoint/{endpoint.pk}/change/", {**ENDPOINT_FORM, **changes}
        )
        assert response.status_code == 200, changes
        assert message in response.content.decode(), changes
    assert not AuditEntry.objects.exists()


def test_archived_filter_and_archive_action(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    live = EndpointFactory(operation_id="live")
    gone = EndpointFactory(operation_id="gone")

    client.post(
        "/admin/gateway/endpoint/",
        {"action": "archive_selected", "_selected_action": [gone.pk]},
    )

    assert Endpoint.objects.get(pk=gone.pk).archived_at is not None
    archived_page = client.get("/admin/gateway/endpoint/?state=archived").content.decode()
    live_page = client.get("/admin/gateway/endpoint/?state=live").content.decode()
    assert gone.meter_name in archived_page and live.meter_name not in archived_page
    assert live.meter_name in live_page and gone.meter_name not in live_page
    assert AuditEntry.objects.filter(action="gateway.endpoint_change").count() == 1


def test_upstream_url_only_with_the_url_permission(client):
    upstream = UpstreamFactory(name="catalog", base_url="http://api.internal:8080")
    editor = StaffUserFactory(permissions=["gateway.view_upstream", "gateway.change_upstream"])
    client.force_login(editor)

    client.post(
        f"/admin/gateway/upstream/{upstream.pk}/change/",
        {
            "name": "catalog",
            "base_url": "http://evil.example",
            "timeout_seconds": "5",
            "max_request_bytes": "1000",
        },
    )

    upstream.refresh_from_db()
    assert upstream.base_url == "http://api.internal:8080"
    assert upstream.timeout_seconds == 5
    assert client.get("/admin/gateway/upstream/add/").status_code == 403

    trusted = StaffUserFactory(
        permissions=[
            "gateway.view_upstream",
            "gateway.change_upstream",
            "gateway.change_upstream_url",
        ]
    )
    client.force_login(trusted)
    client.post(
        f"/admin/gateway/upstream/{upstream.pk}/change/",
        {
            "name": "catalog",
            "base_url": "http://api2.internal:8080",
            "timeout_seconds": "5",
            "max_request_bytes": "1000",
        },
    )
    upstream.refresh_from_db()
    assert upstream.base_url == "http://api2.internal:8080"
    entries = AuditEntry.objects.filter(action="gateway.upstream_change").order_by("created")
    assert [e.after for e in entries] == [
        {"timeout_seconds": 5.0, "max_request_bytes": 1000},
        {"base_url": "http://api2.internal:8080"},
    ]


def test_upstream_url_is_validated(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    upstream = UpstreamFactory(name="catalog", base_url="http://api.internal:8080")

    response = client.post(
        f"/admin/gateway/upstream/{upstream.pk}/change/",
        {
            "name": "catalog",
            "base_url": "file:///etc/passwd",
            "timeout_seconds": "30",
            "max_request_bytes": "1000",
        },
    )

    assert response.status_code == 200
    assert "http:// or https://" in response.content.decode()


def test_signing_secret_is_on_the_upstreams_page_never_in_the_list(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    upstream = UpstreamFactory(name="catalog")

    listing = client.get("/admin/gateway/upstream/").content.decode()
    page = client.get(f"/admin/gateway/upstream/{upstream.pk}/change/").content.decode()

    assert upstream.signing_secret not in listing
    assert upstream.signing_secret in page


def test_service_token_is_shown_once_and_stored_hashed(client):
    from gateway.selectors import upstream_for_service_token

    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    upstream = UpstreamFactory(name="catalog")

    response = client.post(
        "/admin/gateway/upstream/",
        {"action": "issue_service_token", "_selected_action": [upstream.pk]},
        follow=True,
    )

    page = response.content.decode()
    token = page.split("the new service token is ")[1].split(" ")[0]
    upstream.refresh_from_db()
    assert token.startswith(upstream.service_token_prefix + "_")
    assert token.split("_")[-1] not in upstream.service_token_hash
    assert upstream_for_service_token(token) == upstream
    assert upstream_for_service_token(token[:-1] + "x") is None
    assert (
        token not in client.get(f"/admin/gateway/upstream/{upstream.pk}/change/").content.decode()
    )
    assert AuditEntry.objects.filter(action="gateway.service_token_issue").count() == 1


def test_developers_and_staff_without_permission_see_nothing(client):
    upstream = UpstreamFactory(name="catalog")
    client.force_login(UserFactory())
    assert client.get("/admin/gateway/upstream/").status_code == 302
    client.force_login(StaffUserFactory(permissions=[]))
    assert client.get("/admin/gateway/upstream/").status_code == 403
    assert client.get(f"/admin/gateway/upstream/{upstream.pk}/change/").status_code == 403
