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


def _spellings(email: str, count: int) -> list[str]:
    """``count`` different spellings of ``email`` in upper and lower case, some with spaces."""
    letters = [index for index, char in enumerate(email) if char.isalpha()]
    spellings = []
    for n in range(1, count + 1):
        chars = list(email)
        for bit, index in enumerate(letters):
            if n >> bit & 1:
                chars[index] = chars[index].upper()
        spelling = "".join(chars)
        spellings.append(f" {spelling} " if n % 2 else spelling)
    return spellings


@pytest.mark.django_db
def test_spellings_of_one_email_from_many_addresses_share_one_limit(client, owner):
    spellings = _spellings(owner.email, 13)
    assert len(set(spellings)) == 13

    statuses = [
        client.post(
            "/accounts/login/",
            {"login": spelling, "password": "wrong"},
            REMOTE_ADDR=f"198.51.100.{n}",
        ).status_code
        for n, spelling in enumerate(spellings[:12])
    ]

    assert statuses[:10] == [200] * 10
    assert statuses[10:] == [429, 429]
    # The account's count is spent whoever asks and however it is spelt, right password or not.
    blocked = client.post(
        "/accounts/login/",
        {"login": spellings[12], "password": PASSWORD},
        REMOTE_ADDR="203.0.113.50",
    )
    assert blocked.status_code == 429


@pytest.mark.django_db
def test_an_upper_case_email_signs_in_to_the_same_account(client, owner):
    # allauth finds the user by the lower-cased address (userkit.filter_users_by_email), which
    # is why the limit counts every spelling as one.
    response = client.post(
        "/accounts/login/", {"login": f" {owner.email.upper()} ", "password": PASSWORD}
    )

    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"
    assert int(client.session["_auth_user_id"]) == owner.pk
