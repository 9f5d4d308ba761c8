"""Emails and the confirmation page speak as Meterdesk, to an email, never a username (issue 16).

They said "Hello from example.com!" (django.contrib.sites' default row, which allauth's emails
read) and the confirmation page greeted a username signup never asked for.
"""

import re
from urllib.parse import urlsplit

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.sites.models import Site
from django.core import mail

from portal.apps import site_sync

pytestmark = pytest.mark.django_db

EMAIL = "jane.doe@meterdesk.test"
PASSWORD = "a-Long-passw0rd!"


def sign_up(client) -> str:
    client.post("/accounts/signup/", {"email": EMAIL, "password1": PASSWORD, "password2": PASSWORD})
    [message] = mail.outbox
    return str(message.body)


def test_the_site_row_follows_site_url_and_site_name(settings):
    site = Site.objects.get_current()

    assert site.domain == urlsplit(settings.SITE_URL).netloc
    assert site.name == "Meterdesk"


def test_a_changed_site_url_reaches_the_site_row_at_the_next_migrate(settings):
    settings.SITE_URL = "https://api.example.org"
    settings.SITE_NAME = "Acme API"

    site_sync(apps=apps, using="default")

    try:
        site = Site.objects.get_current()
        assert (site.domain, site.name) == ("api.example.org", "Acme API")
    finally:
        # The row goes back with the test's transaction; the process's cache of it must too.
        Site.objects.clear_cache()


def test_the_confirmation_email_says_meterdesk_and_names_no_username(client):
    body = sign_up(client)

    username = get_user_model().objects.get(email=EMAIL).username
    assert "Hello from Meterdesk!" in body
    assert "Thank you for using Meterdesk!" in body
    assert "example.com" not in body
    assert f"user {EMAIL} has given" in body
    assert re.search(rf"\b{re.escape(username)}\b", body.replace(EMAIL, "")) is None


def test_the_confirmation_page_names_the_email_not_a_username(client):
    body = sign_up(client)
    link = re.search(r"(/accounts/confirm-email/\S+/)", body)
    assert link is not None
    path = link[1]

    page = client.get(path).content.decode()

    username = get_user_model().objects.get(email=EMAIL).username
    assert f"Confirm that <strong>{EMAIL}</strong> is your email address" in page
    assert f"user {username}" not in page
    assert re.search(rf"\b{re.escape(username)}\b", page.replace(EMAIL, "")) is None
