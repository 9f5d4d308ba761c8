from datetime import timedelta

import pytest
from django.utils import timezone

from portal.models import AuditEntry
from tests.factories import ApiKeyFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_an_operators_edit_of_a_key_is_audited(client):
    operator = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(operator)
    key = ApiKeyFactory(name="ci")
    expiry = (timezone.now() + timedelta(days=3)).replace(microsecond=0, second=0)

    response = client.post(
        f"/admin/portal/apikey/{key.pk}/change/",
        {
            "name": "ci (rotated soon)",
            "expires_at_0": expiry.strftime("%Y-%m-%d"),
            "expires_at_1": expiry.strftime("%H:%M:%S"),
        },
    )

    assert response.status_code == 302
    key.refresh_from_db()
    assert key.name == "ci (rotated soon)"
    [entry] = AuditEntry.objects.filter(action="api_key.edit")
    assert entry.actor == operator
    assert entry.target == key.prefix
    assert entry.before == {"name": "ci", "expires_at": None}
    assert entry.after["name"] == "ci (rotated soon)"
    assert entry.after["expires_at"].startswith(expiry.strftime("%Y-%m-%dT%H:%M"))
