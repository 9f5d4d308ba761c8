import pytest

from tests.factories import PASSWORD


@pytest.mark.django_db
def test_repeated_failed_logins_are_rate_limited(client, owner, settings):
    settings.LOGIN_RATE = "10/m"  # the decorator reads it at import; this documents the default
    statuses = [
        client.post("/accounts/login/", {"login": owner.email, "password": "wrong"}).status_code
        for _ in range(12)
    ]

    assert statuses[:10] == [200] * 10
    assert statuses[10:] == [429, 429]
    # Even the right password is refused while the limit holds: no guessing around it.
    blocked = client.post("/accounts/login/", {"login": owner.email, "password": PASSWORD})
    assert blocked.status_code == 429
    assert "Too many attempts" in blocked.content.decode()
    assert blocked["Retry-After"] == "60"


@pytest.mark.django_db
def test_repeated_signups_from_one_address_are_rate_limited(client):
    statuses = [
        client.post(
            "/accounts/signup/", {"email": f"u{i}@example.com", "password1": "x", "password2": "y"}
        ).status_code
        for i in range(7)
    ]

    assert statuses[:5] == [200] * 5
    assert statuses[5:] == [429, 429]
