"""Revoking keys from the API key admin takes the operator permission "revoke_keys" (the one
the account action "Revoke all API keys" takes), not merely the right to edit keys."""

import pytest
from django.test import Client
from django.urls import reverse

from portal.models import AuditEntry
from tests.factories import StaffUserFactory
from tests.portal.admin_actions import action_choices, api_get

CHANGELIST = reverse("admin:portal_apikey_changelist")

pytestmark = pytest.mark.django_db


def staff(*permissions: str) -> Client:
    client = Client()
    client.force_login(StaffUserFactory(permissions=list(permissions)))
    return client


def revoke_selected(client: Client, *keys):
    """The changelist's action form as a browser would submit it (or a forged copy of it)."""
    return client.post(
        CHANGELIST,
        {"action": "revoke_selected", "_selected_action": [key.pk for key in keys], "index": 0},
        follow=True,
    )


def test_editing_keys_alone_does_not_offer_or_allow_revoking(client, api_key):
    operator = staff("portal.change_apikey")

    listing = operator.get(CHANGELIST)
    forged = revoke_selected(operator, api_key)

    assert listing.status_code == 200
    assert "revoke_selected" not in action_choices(listing)
    assert forged.status_code == 200
    api_key.refresh_from_db()
    assert api_key.revoked_at is None
    assert not AuditEntry.objects.exists()
    assert api_get(client, api_key.plaintext).status_code == 200


@pytest.mark.parametrize("reading", ["portal.view_apikey", "portal.change_apikey"])
def test_the_revoke_keys_permission_offers_and_runs_the_action(client, api_key, reading):
    operator = staff(reading, "portal.revoke_keys")

    listing = operator.get(CHANGELIST)
    response = revoke_selected(operator, api_key)

    assert "revoke_selected" in action_choices(listing)
    assert "Revoked 1 key" in response.content.decode()
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert AuditEntry.objects.get().action == "api_key.revoke"
    assert api_get(client, api_key.plaintext).status_code == 401
