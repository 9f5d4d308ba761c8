"""In a real browser: an owner invites a billing member and a developer from the members page;
each accepts from their email's link (one signing up, one logging in) and sees exactly what
their role allows; the developer leaves and is locked out at once."""

import re

import pytest
from django.core import mail

from tests.factories import PASSWORD, AccountFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NEW_PASSWORD = "analytical-Engine-1843"


def log_in(page, live_server, email, password=PASSWORD):
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", password)
    page.get_by_role("button", name=re.compile("Sign In", re.I)).click()


def link_in(message, pattern: str, live_server) -> str:
    found = re.search(rf"https?://\S+{pattern}", str(message.body))
    assert found is not None, message.body
    return re.sub(r"^https?://[^/]+", live_server.url, found.group(0))


def invite(page, email: str, role: str) -> None:
    page.fill("input[name=email]", email)
    page.select_option("select[name=role]", label=role)
    page.get_by_role("button", name="Send invitation").click()
    page.get_by_text(f"Invitation sent to {email} as {role}.").wait_for()


def nav_links(page) -> list[str]:
    return page.locator("nav.nav > a").all_inner_texts()


def test_owner_invites_billing_and_developer_who_see_what_their_roles_allow(
    live_server, page, screenshot
):
    team = AccountFactory(name="Acme", owner=UserFactory(email="owner@acme.test"))
    # The developer already has a login (and an organisation of their own).
    AccountFactory(name="Grace's lab", owner=UserFactory(email="grace@acme.test"))
    browser = page.context.browser

    # The owner invites both from the members page.
    page.goto(f"{live_server.url}/accounts/login/")
    log_in(page, live_server, team.owner.email)
    page.wait_for_url(re.compile(r"/dashboard/"))
    page.get_by_role("link", name="Members").click()
    invite(page, "ada@acme.test", "Billing")
    invite(page, "grace@acme.test", "Developer")
    assert page.get_by_test_id("invitations").locator("li").count() == 2
    screenshot(page, "teams-members-invited")
    billing_link, developer_link = (
        link_in(message, r"/invitations/\S+/", live_server) for message in mail.outbox
    )
    assert [message.to for message in mail.outbox] == [["ada@acme.test"], ["grace@acme.test"]]

    # Ada is new: she signs up from the link, confirms her address and is brought back.
    ada = browser.new_page()
    ada.goto(billing_link)
    assert "Join Acme" in ada.content()
    ada.get_by_test_id("invitation").get_by_role("link", name="Sign up").click()
    ada.fill("input[name=email]", "ada@acme.test")
    ada.fill("input[name=password1]", NEW_PASSWORD)
    ada.fill("input[name=password2]", NEW_PASSWORD)
    ada.get_by_role("button", name=re.compile("Sign Up", re.I)).click()
    ada.wait_for_url(re.compile(r"/accounts/confirm-email/"))
    ada.goto(link_in(mail.outbox[-1], r"/accounts/confirm-email/\S+/", live_server))
    ada.get_by_role("button", name=re.compile("Confirm", re.I)).click()
    ada.wait_for_url(re.compile(r"/invitations/"))
    ada.get_by_role("button", name="Accept and join Acme").click()
    ada.wait_for_url(re.compile(r"/dashboard/"))
    assert "Welcome to Acme: you joined as Billing." in ada.content()
    assert "Billing" in nav_links(ada)
    assert "API keys" not in nav_links(ada)
    billing_page = ada.goto(f"{live_server.url}/billing/")
    assert billing_page is not None and billing_page.status == 200
    keys_page = ada.goto(f"{live_server.url}/keys/")
    assert keys_page is not None and keys_page.status == 403
    screenshot(ada, "teams-billing-refused-keys")

    # Grace has a login: she logs in from the link and accepts.
    grace = browser.new_page()
    grace.goto(developer_link)
    grace.get_by_test_id("invitation").get_by_role("link", name="Log in").click()
    log_in(grace, live_server, "grace@acme.test")
    grace.wait_for_url(re.compile(r"/invitations/"))
    grace.get_by_role("button", name="Accept and join Acme").click()
    grace.wait_for_url(re.compile(r"/dashboard/"))
    assert "Welcome to Acme: you joined as Developer." in grace.content()
    assert "API keys" in nav_links(grace)
    assert "Billing" not in nav_links(grace)
    keys_page = grace.goto(f"{live_server.url}/keys/")
    assert keys_page is not None and keys_page.status == 200
    billing_page = grace.goto(f"{live_server.url}/billing/")
    assert billing_page is not None and billing_page.status == 403

    # The owner sees both as members now.
    page.goto(f"{live_server.url}/organisation/members/")
    members = page.get_by_test_id("members")
    assert members.locator('tr[data-member="ada@acme.test"] .member-role').inner_text() == (
        "Billing"
    )
    assert members.locator('tr[data-member="grace@acme.test"] .member-role').inner_text() == (
        "Developer"
    )

    # Grace leaves, and her very next page no longer reaches Acme.
    grace.goto(f"{live_server.url}/organisation/members/")
    grace.get_by_text("Leave", exact=True).click()
    grace.get_by_role("button", name="Yes, leave").click()
    grace.wait_for_url(re.compile(r"/dashboard/"))
    assert "You left Acme." in grace.content()
    grace.goto(f"{live_server.url}/organisation/members/")
    assert "Members of Grace's lab" in grace.content()
    assert "Acme" not in grace.get_by_test_id("organisation-switcher").inner_text()
    screenshot(grace, "teams-developer-left")
    page.goto(f"{live_server.url}/organisation/members/")
    assert page.locator('tr[data-member="grace@acme.test"]').count() == 0
    ada.close()
    grace.close()
