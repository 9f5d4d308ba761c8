import pytest


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
