"""The account settings page (issue 16): one page for email, password, two-factor, the usage
alert emails, the export of one's data and deleting the account. Each developer sees only their
own account; the header's Account link leads here."""

import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.urls import reverse

pytestmark = pytest.mark.django_db

URL = "/account/"


def test_a_visitor_is_sent_to_log_in(client):
    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_the_page_shows_where_each_setting_stands(owner_client, owner):
    page = owner_client.get(URL).content.decode()

    email = page.split('data-testid="settings-email"')[1].split("</section>")[0]
    assert owner.email in email and "Verified" in email and "Primary" in email
    assert f'href="{reverse("account_email")}"' in email
    password = page.split('data-testid="settings-password"')[1].split("</section>")[0]
    assert f'href="{reverse("account_change_password")}"' in password
    mfa = page.split('data-testid="settings-mfa"')[1].split("</section>")[0]
    assert "Off" in mfa and f'href="{reverse("mfa_activate_totp")}"' in mfa
    for name in ("usage.csv", "invoices.csv", "account.json"):
        assert f'href="{reverse("portal:account-export", args=[name])}"' in page
    assert f'action="{reverse("portal:account-delete")}"' in page


def test_two_factor_on_is_shown_with_its_management_page(owner_client, owner):
    TOTP.activate(owner, generate_totp_secret())

    page = owner_client.get(URL).content.decode()

    mfa = page.split('data-testid="settings-mfa"')[1].split("</section>")[0]
    assert "On" in mfa and f'href="{reverse("mfa_index")}"' in mfa


def test_the_usage_alert_setting_is_the_metering_form_and_comes_back_here(owner_client, account):
    page = owner_client.get(URL).content.decode()
    notifications = page.split('data-testid="settings-notifications"')[1].split("</section>")[0]
    assert f'action="{reverse("metering:alert-settings")}"' in notifications
    assert f'name="next" value="{URL}"' in notifications

    response = owner_client.post(reverse("metering:alert-settings"), {"next": URL})

    assert response["Location"] == URL
    account.refresh_from_db()
    assert account.alerts_opt_out is True
    page = owner_client.get(URL).content.decode()
    assert "Courtesy usage alerts are off" in page


def test_an_outsider_sees_only_their_own_account(client, owner, outsider):
    client.force_login(outsider)

    page = client.get(URL).content.decode()

    assert outsider.email in page
    assert owner.email not in page


def test_the_header_account_link_and_allauth_pages_lead_here(owner_client):
    for path in ("/dashboard/", reverse("account_email"), reverse("account_change_password")):
        page = owner_client.get(path).content.decode()
        assert f'href="{URL}"' in page, path
