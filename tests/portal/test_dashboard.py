import re

import pytest

from portal.models import Role
from tests.factories import ApiKeyFactory, MembershipFactory


@pytest.mark.django_db
def test_dashboard_says_which_tier_the_developer_is_on(owner_client, account):
    response = owner_client.get("/dashboard/")

    assert response.status_code == 200
    assert account.tier.name in response.content.decode()


@pytest.mark.django_db
def test_dashboard_needs_login(client):
    response = client.get("/dashboard/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_public_pages_render(client):
    # /admin/login/ is a redirect to /accounts/login/ (tests/portal/test_admin_login_mfa.py).
    for path in ["/", "/pricing/", "/accounts/signup/", "/accounts/login/"]:
        assert client.get(path).status_code == 200, path


@pytest.mark.django_db
def test_a_billing_member_sees_money_and_no_keys(client, account):
    ApiKeyFactory(account=account, created_by=account.owner)
    client.force_login(MembershipFactory(account=account, role=Role.BILLING).user)

    page = client.get("/dashboard/").content.decode()

    assert "Billing of" in page
    assert "Manage keys" not in page
    assert "Billing &amp; invoices" in page


@pytest.mark.django_db
def test_a_developer_counts_their_own_keys_and_sees_no_invoices(client, account):
    developer = MembershipFactory(account=account, role=Role.DEVELOPER).user
    ApiKeyFactory(account=account, created_by=developer)
    ApiKeyFactory.create_batch(2, account=account, created_by=account.owner)
    client.force_login(developer)

    page = client.get("/dashboard/").content.decode()

    assert re.search(r"Your API keys</div>\s*<div class=\"stat-value\">1</div>", page)
    assert "Billing &amp; invoices" not in page
    assert 'id="usage-alerts"' not in page
