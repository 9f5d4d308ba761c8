"""The quickstart page (issue 16, "docs that get someone calling in a minute"): samples in curl,
Python and JavaScript with the signed-in developer's key prefix and never a secret, every error
type linked to its page, the rate-limit headers explained with a retry."""

import html
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.api.problems import PROBLEM_TYPES
from portal.models import Role
from portal.services import api_key_revoke, api_key_roll
from tests.factories import ApiKeyFactory, MembershipFactory

pytestmark = pytest.mark.django_db

URL = "/quickstart/"


def samples(page: str) -> dict[str, str]:
    """The text of each copyable sample, as the Copy button copies it."""
    found = re.findall(r'<pre [^>]*id="sample-(\w+)"[^>]*>(.*?)</pre>', page, re.S)
    return {name: html.unescape(text) for name, text in found}


def test_a_visitor_sees_samples_with_a_made_up_key_in_the_install_mode(client, settings):
    settings.STRIPE_LIVE_MODE = False
    page = client.get(URL).content.decode()

    shown = samples(page)
    assert set(shown) == {"env", "curl", "python", "javascript"}
    assert 'export MDK_API_KEY="mdk_test_ab12cd34_REST_OF_YOUR_KEY"' in shown["env"]
    for name in ("curl", "python", "javascript"):
        assert "mdk_test_ab12cd34_REST_OF_YOUR_KEY" in shown[name]
        assert f"{settings.SITE_URL}/v1" in shown[name]
    assert "mdk_live_" not in page
    assert reverse("account_signup") in page


def test_live_mode_shows_live_keys(client, settings):
    settings.STRIPE_LIVE_MODE = True

    page = client.get(URL).content.decode()

    assert "mdk_live_ab12cd34_REST_OF_YOUR_KEY" in page
    assert "mdk_test_" not in page


def test_the_developer_sees_their_newest_key_prefix_and_never_a_secret(owner_client, account):
    ApiKeyFactory(account=account, name="old")
    newest = ApiKeyFactory(account=account, name="ci server")

    page = owner_client.get(URL).content.decode()

    shown = samples(page)
    for text in shown.values():
        assert f"{newest.prefix}_REST_OF_YOUR_KEY" in text
    secret = newest.plaintext.rpartition("_")[2]
    assert secret not in page
    assert "ci server" in page


def test_a_rolled_key_gives_way_to_its_replacement(owner_client, account):
    key = ApiKeyFactory(account=account)
    replacement, _ = api_key_roll(key=key, grace=timedelta(hours=1))
    ApiKeyFactory(account=account, created=timezone.now() - timedelta(days=1))

    page = owner_client.get(URL).content.decode()

    assert f"{replacement.prefix}_REST_OF_YOUR_KEY" in page
    assert f"{key.prefix}_REST_OF_YOUR_KEY" not in page


def test_a_developer_without_a_working_key_is_sent_to_create_one(owner_client, account):
    api_key_revoke(key=ApiKeyFactory(account=account))

    page = owner_client.get(URL).content.decode()

    assert "mdk_test_ab12cd34_REST_OF_YOUR_KEY" in page
    assert reverse("portal:key-create") in page


def test_an_outsider_never_sees_the_owner_key(client, owner, outsider):
    owners = ApiKeyFactory(account=owner.owned_accounts.get())
    theirs = ApiKeyFactory(account=outsider.owned_accounts.get())
    client.force_login(outsider)

    page = client.get(URL).content.decode()

    assert theirs.prefix in page
    assert owners.prefix not in page


def test_every_error_type_is_explained_and_linked(client):
    page = client.get(URL).content.decode()

    # The throttle's own types (registered by the API's modules) are among them.
    assert {"quota-exceeded", "rate-limited", "cost-above-burst"} <= set(PROBLEM_TYPES)
    for slug, problem in PROBLEM_TYPES.items():
        link = reverse("portal:problem-type", args=[slug])
        assert f'<a href="{link}"><code>{slug}</code></a>' in page
        assert html.escape(problem.description) in page
        assert client.get(link).status_code == 200


def test_the_rate_limit_headers_and_retrying_are_explained(client):
    page = client.get(URL).content.decode()

    for header in ("RateLimit-Policy", "RateLimit", "X-RateLimit-Remaining", "Retry-After"):
        assert f"<code>{header}</code>" in page
    python = samples(page)["python"]
    assert 'time.sleep(int(error.headers.get("Retry-After", "1")))' in python
    # A quota refusal is not slept on: its Retry-After is the end of the period.
    assert 'problem["type"].endswith("/rate-limited/")' in python
    assert "quota-exceeded" in page


def test_the_navigation_and_the_dashboard_lead_here(owner_client):
    for path in ("/", "/dashboard/"):
        page = owner_client.get(path, follow=True).content.decode()
        assert f'href="{URL}"' in page


def test_copy_buttons_need_no_inline_script(client):
    response = client.get(URL)
    page = response.content.decode()

    assert page.count("data-copy=") == 4
    assert "onclick" not in page
    assert "<script>" not in page
    assert "'unsafe-inline'" not in response["Content-Security-Policy"].split("script-src")[1]


def test_a_developer_sees_their_own_newest_key_not_a_teammates(client, account):
    developer = MembershipFactory(account=account, role=Role.DEVELOPER).user
    theirs = ApiKeyFactory(
        account=account, created_by=developer, created=timezone.now() - timedelta(hours=1)
    )
    teammates = ApiKeyFactory(account=account, created_by=account.owner)
    client.force_login(developer)

    page = client.get(URL).content.decode()

    assert f"{theirs.prefix}_REST_OF_YOUR_KEY" in page
    assert teammates.prefix not in page


def test_a_billing_member_is_not_sent_to_create_a_key(client, account):
    ApiKeyFactory(account=account, created_by=account.owner)
    client.force_login(MembershipFactory(account=account, role=Role.BILLING).user)

    page = client.get(URL).content.decode()

    assert "mdk_test_ab12cd34_REST_OF_YOUR_KEY" in page
    assert "does not make API keys" in page
    assert reverse("portal:key-create") not in page
