"""Every page answers with an enforced Content-Security-Policy: nothing from elsewhere, no inline
script but the one carrying this response's nonce, no inline style, no framing; forms may post
here and end on Stripe's hosted pages. The JSON API under /v1/ gets no header.

What the browser does with the header (and that the pages still work under it) is
tests/portal/test_content_security_policy_browser.py."""

import re

import pytest
from django.urls import reverse

from portal.csp import stripe_form_action_origins
from tests.factories import AccountFactory
from tests.portal.admin_actions import choose_action

pytestmark = pytest.mark.django_db

ANONYMOUS_PAGES = [
    "/",
    "/pricing/",
    "/accounts/login/",
    "/accounts/signup/",
    "/accounts/password/reset/",
    "/problems/malformed-body/",
    "/api/docs/",
    "/no-such-page/",
]
DEVELOPER_PAGES = ["/dashboard/", "/keys/", "/keys/new/", "/usage/", "/billing/"]


def directives(response) -> dict[str, list[str]]:
    assert "Content-Security-Policy-Report-Only" not in response
    header = response["Content-Security-Policy"]
    parsed = {}
    for part in header.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


def nonce_of(response) -> str:
    [nonce] = [
        value[len("'nonce-") : -1]
        for value in directives(response)["script-src"]
        if value.startswith("'nonce-")
    ]
    return nonce


def assert_strict(response) -> None:
    policy = directives(response)
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'", f"'nonce-{nonce_of(response)}'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["img-src"] == ["'self'", "data:"]
    assert policy["connect-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["form-action"] == ["'self'", *stripe_form_action_origins()]
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response["Content-Security-Policy"]


def assert_no_inline_code(html: str) -> None:
    """What the policy would refuse, were it in the page: inline event handlers, style
    attributes, <style> blocks, and scripts that run without a src or a nonce (JSON data blocks
    do not run)."""
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"
    assert not re.search(r"\sstyle\s*=", html), "style attribute"
    assert "<style" not in html
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag or "nonce=" in tag or 'type="application/json"' in tag, tag


@pytest.mark.parametrize("path", ANONYMOUS_PAGES)
def test_every_public_page_is_under_the_strict_policy(client, path):
    response = client.get(path)

    assert response.status_code in (200, 404)
    assert_strict(response)
    assert_no_inline_code(response.content.decode())


@pytest.mark.parametrize("path", DEVELOPER_PAGES)
def test_every_developer_page_is_under_the_strict_policy(owner_client, path):
    response = owner_client.get(path)

    assert response.status_code == 200
    assert_strict(response)
    assert_no_inline_code(response.content.decode())


def test_each_response_gets_its_own_nonce(client):
    first, second = client.get("/"), client.get("/")

    assert len(nonce_of(first)) >= 22  # 16 random bytes, base64
    assert nonce_of(first) != nonce_of(second)


def test_the_api_docs_start_swagger_ui_from_a_script_file(client):
    page = client.get("/api/docs/").content.decode()

    [script_url] = re.findall(r'<script src="(/api/docs/\?[^"]*script[^"]*)"', page)
    script = client.get(script_url.replace("&amp;", "&"))
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle(" in script.content.decode()


def test_the_rate_limited_page_is_under_the_strict_policy(client, owner):
    for _ in range(11):
        response = client.post("/accounts/login/", {"login": owner.email, "password": "wrong"})

    assert response.status_code == 429
    assert_strict(response)


def test_the_server_error_page_is_under_the_strict_policy(client, monkeypatch):
    def broken():
        raise RuntimeError("the database went away")

    monkeypatch.setattr("portal.views.pages.tier_list_public", broken)
    client.raise_request_exception = False

    response = client.get("/")

    assert response.status_code == 500
    assert_strict(response)
    assert_no_inline_code(response.content.decode())


def test_the_admin_is_under_the_strict_policy(admin_client):
    account = AccountFactory()
    pages = [
        reverse("admin:index"),
        reverse("admin:portal_account_changelist"),
        reverse("admin:portal_account_change", args=[account.pk]),
        reverse("admin:portal_account_money_audit", args=[account.pk]),
    ]
    for path in pages:
        response = admin_client.get(path)
        assert response.status_code == 200, path
        assert_strict(response)
        assert_no_inline_code(response.content.decode())


def test_the_admin_account_action_step_is_under_the_strict_policy(admin_client):
    account = AccountFactory()

    response = choose_action(admin_client, "suspend", [account])

    assert response.status_code == 200
    assert "account-action" in response.content.decode()
    assert_strict(response)
    assert_no_inline_code(response.content.decode())


def test_djstripe_admin_pages_may_style_inline_but_run_no_inline_script(admin_client):
    """dj-stripe's own admin templates carry <style> blocks and style attributes; on its pages
    (and only there) inline styles pass. Scripts are as strict as on every other page."""
    response = admin_client.get(reverse("admin:djstripe_customer_add"))

    assert response.status_code == 200
    policy = directives(response)
    assert policy["style-src"] == ["'self'", "'unsafe-inline'"]
    assert policy["script-src"] == ["'self'", f"'nonce-{nonce_of(response)}'"]
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]


def test_forms_may_end_on_the_stripe_emulator_the_portal_talks_to(client, settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:40123/"

    policy = directives(client.get("/pricing/"))

    assert policy["form-action"] == [
        "'self'",
        "https://checkout.stripe.com",
        "https://billing.stripe.com",
        "http://127.0.0.1:40123",
    ]


def test_forms_may_end_only_on_stripe_when_the_portal_talks_to_stripe(client, settings):
    settings.STRIPE_API_BASE = ""

    policy = directives(client.get("/pricing/"))

    assert policy["form-action"] == [
        "'self'",
        "https://checkout.stripe.com",
        "https://billing.stripe.com",
    ]


def test_the_json_api_gets_no_policy(client, bearer):
    answers = [client.get("/v1/me", **bearer), client.get("/v1/no-such-endpoint")]

    assert [answer.status_code for answer in answers] == [200, 404]
    for answer in answers:
        assert "Content-Security-Policy" not in answer
