"""A new key's secret is shown by the answer to the create (or roll) POST and stored nowhere:
not in the session, not in any table, not in a cookie. Reloading that answer shows it no more
and makes no second key."""

import re

import pytest
from django.contrib.sessions.models import Session
from django.db import connection

from portal.models import ApiKey
from portal.views.keys import LEGACY_NEW_KEY_SESSION

pytestmark = pytest.mark.django_db

SECRET_BOX = re.compile(r'<code id="new-key"[^>]*>([^<]+)</code>')


def shown_secret(response) -> str:
    match = SECRET_BOX.search(response.content.decode())
    assert match, "the new key is shown in the secret box"
    return match.group(1)


def stored_anywhere(text: str) -> list[str]:
    """Where ``text`` occurs in the database: every column of every table, and every session's
    decoded data (a session row holds its data signed and encoded, not as plain text)."""
    places = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            # Table names from the database's own catalogue, quoted: nothing outside goes in.
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            if any(text in str(value) for row in cursor.fetchall() for value in row):
                places.append(table)
    for session in Session.objects.all():
        if text in str(session.get_decoded()):
            places.append(f"session {session.session_key}")
    return places


def create_form_token(client) -> str:
    page = client.get("/keys/new/").content.decode()
    match = re.search(r'name="form_token" value="([^"]+)"', page)
    assert match
    return match.group(1)


def test_creating_a_key_answers_with_its_secret_and_stores_it_nowhere(owner_client, account):
    response = owner_client.post(
        "/keys/new/", {"name": "CI", "form_token": create_form_token(owner_client)}
    )

    secret = shown_secret(response)
    key = ApiKey.objects.get(account=account)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert secret.startswith(f"{key.prefix}_")
    assert stored_anywhere(secret) == []
    assert stored_anywhere(secret.rsplit("_", 1)[1]) == []
    assert all(secret not in morsel.value for morsel in response.cookies.values())
    assert secret not in owner_client.get("/keys/").content.decode()


def test_rolling_a_key_answers_with_the_new_secret_and_stores_it_nowhere(owner_client, api_key):
    response = owner_client.post(f"/keys/{api_key.pk}/roll/", {"grace_seconds": "3600"})

    secret = shown_secret(response)
    api_key.refresh_from_db()
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert secret.startswith(f"{api_key.replaced_by.prefix}_")
    assert "keeps working until" in response.content.decode()
    assert stored_anywhere(secret) == []
    assert secret not in owner_client.get("/keys/").content.decode()


def test_sending_the_create_form_again_makes_no_second_key_and_shows_no_secret(
    owner_client, account
):
    form = {"name": "CI", "form_token": create_form_token(owner_client)}
    first = owner_client.post("/keys/new/", form)

    again = owner_client.post("/keys/new/", form, follow=True)

    assert ApiKey.objects.filter(account=account).count() == 1
    assert again.redirect_chain == [("/keys/", 302)]
    page = again.content.decode()
    assert shown_secret(first) not in page
    assert 'id="new-key"' not in page
    assert "That form was already sent" in page


def test_two_create_forms_make_two_keys(owner_client, account):
    """Two tabs, two forms: each is its own request, not a re-sent one."""
    tokens = [create_form_token(owner_client) for _ in range(2)]

    for n, token in enumerate(tokens):
        response = owner_client.post("/keys/new/", {"name": f"tab {n}", "form_token": token})
        assert response.status_code == 200

    assert ApiKey.objects.filter(account=account).count() == 2


def test_a_form_fixed_after_a_400_still_creates_its_key(owner_client, account):
    token = create_form_token(owner_client)

    refused = owner_client.post("/keys/new/", {"name": "", "form_token": token})
    fixed = owner_client.post("/keys/new/", {"name": "CI", "form_token": token})

    assert refused.status_code == 400
    assert f'value="{token}"' in refused.content.decode()
    assert fixed.status_code == 200
    assert shown_secret(fixed)


def test_a_secret_left_in_a_session_from_before_is_shown_once_and_dropped(owner_client):
    """Sessions written before the secret stopped going through them may still hold one."""
    session = owner_client.session
    session[LEGACY_NEW_KEY_SESSION] = {
        "secret": "mdk_test_legacy00_x",
        "name": "old",
        "prefix": "p",
    }
    session.save()

    first = owner_client.get("/keys/")
    second = owner_client.get("/keys/")

    assert shown_secret(first) == "mdk_test_legacy00_x"
    assert 'id="new-key"' not in second.content.decode()
    assert stored_anywhere("mdk_test_legacy00_x") == []
