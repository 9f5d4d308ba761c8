"""Operators sign in to the admin through allauth's rate-limited login and a second factor.

The admin (portal/admin_site.py) opens only for staff whose session passed a code from their
authenticator app; everyone here signs in through the real pages (``real_staff_login``), not
``force_login``."""

import re

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.contrib import admin
from django.urls import reverse

from portal.models import ApiKey
from tests.factories import PASSWORD, AccountFactory, ApiKeyFactory, StaffUserFactory
from tests.portal.admin_actions import changelist_url
from tests.portal.totp import fresh_totp_code, totp_code

pytestmark = [pytest.mark.django_db, pytest.mark.real_staff_login]

ADMIN = "/admin/"
LOGIN = "/accounts/login/"


@pytest.fixture
def operator(db):
    """A superuser who has not set up an authenticator app yet."""
    return StaffUserFactory(is_superuser=True)


@pytest.fixture
def totp_secret(operator) -> str:
    """The operator's authenticator app, set up; returns the secret their phone holds."""
    secret = generate_totp_secret()
    TOTP.activate(operator, secret)
    return secret


def log_in(client, user, *, next_url: str = ADMIN):
    return client.post(
        f"{LOGIN}?next={next_url}", {"login": user.email, "password": PASSWORD, "next": next_url}
    )


def messages_on(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def admin_opens(client) -> bool:
    return client.get(ADMIN).status_code == 200


def test_the_tests_totp_helper_matches_rfc_6238():
    # RFC 6238 appendix B: SHA-1 secret "12345678901234567890", T = 59 s -> 94287082 (8 digits).
    assert totp_code("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", at=59) == "287082"


def test_the_admin_login_is_allauths_login_and_keeps_next(client, operator):
    response = client.get("/admin/login/?next=/admin/portal/account/")

    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN}?next=/admin/portal/account/"
    # Any admin page leads there, through Django's admin login.
    first = client.get("/admin/portal/account/")
    assert client.get(first["Location"])["Location"] == f"{LOGIN}?next=/admin/portal/account/"


def test_django_admin_login_form_is_never_served_nor_accepts_a_password(client, operator):
    page = client.get("/admin/login/", follow=True)
    posted = client.post("/admin/login/", {"username": operator.username, "password": PASSWORD})

    assert page.redirect_chain[-1][0] == f"{LOGIN}?next={ADMIN}"
    assert 'name="login"' in page.content.decode()  # allauth's form, its field "login"
    assert posted.status_code == 302
    assert posted["Location"].startswith(LOGIN)
    assert "_auth_user_id" not in client.session


def test_wrong_passwords_for_an_operator_are_limited_like_the_portal_login(client, operator):
    login_url = client.get("/admin/login/?next=/admin/")["Location"]

    statuses = [
        client.post(login_url, {"login": operator.email, "password": "wrong"}).status_code
        for _ in range(12)
    ]

    # LOGIN_RATE, 10/m, the portal login's limit (tests/portal/test_login_rate_limit.py).
    assert statuses[:10] == [200] * 10
    assert statuses[10:] == [429, 429]
    blocked = client.post(login_url, {"login": operator.email, "password": PASSWORD})
    assert blocked.status_code == 429
    assert not admin_opens(client)


def test_an_operator_without_an_authenticator_app_is_sent_to_set_one_up(client, operator):
    log_in(client, operator)

    response = client.get(ADMIN, follow=True)

    chain = [url for url, _ in response.redirect_chain]
    assert chain[:2] == [
        "/admin/login/?next=/admin/",
        "/accounts/2fa/totp/activate/?next=%2Fadmin%2F",
    ]
    # allauth first asks for the password again before a factor is added (it does for any
    # account: MFA_REAUTHENTICATION_REQUIRED), then comes back to the activation page.
    assert chain[2].startswith("/accounts/reauthenticate/?next=%2Faccounts%2F2fa%2Ftotp%2Factivate")
    assert (
        "Operators sign in with a second factor. Set up an authenticator app to open the admin."
        in messages_on(response)
    )
    confirmed = client.post(chain[2], {"password": PASSWORD}, follow=True)
    assert confirmed.redirect_chain[-1][0].startswith("/accounts/2fa/totp/activate/")
    page = confirmed.content.decode()
    assert "Set up an authenticator app" in page
    assert 'data-testid="totp-qr"' in page
    assert re.search(r'id="authenticator_secret" value="[A-Z2-7]{32}"', page)


def _every_admin_page() -> list[str]:
    account = AccountFactory()
    pages = [
        reverse("admin:index"),
        reverse("admin:password_change"),
        reverse("admin:jsi18n"),
        reverse("admin:portal_account_change", args=[account.pk]),
        reverse("admin:portal_account_money_audit", args=[account.pk]),
        reverse("admin:app_list", args=["portal"]),
    ]
    for model in admin.site._registry:
        info = (model._meta.app_label, model._meta.model_name)
        pages.append(reverse("admin:{}_{}_changelist".format(*info)))
        pages.append(reverse("admin:{}_{}_add".format(*info)))
    return pages


def test_an_operator_without_an_authenticator_app_opens_no_admin_page(client, operator):
    log_in(client, operator)

    for url in _every_admin_page():
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/?next="), url
        assert client.get(response["Location"])["Location"].startswith(
            "/accounts/2fa/totp/activate/"
        ), url


def test_an_operator_without_an_authenticator_app_cannot_run_an_admin_action(client, operator):
    key = ApiKeyFactory()
    log_in(client, operator)

    response = client.post(
        changelist_url(),
        {
            "action": "revoke_keys",
            "_selected_action": [key.account.pk],
            "apply": "yes",
            "reason": "stolen session",
        },
    )

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert ApiKey.objects.get(pk=key.pk).revoked_at is None


@pytest.mark.django_db(transaction=True)
def test_setting_up_the_app_opens_the_admin_in_that_session(client, operator):
    # transaction=True: allauth records the activation after its transaction commits
    # (allauth/mfa/totp/internal/flows.py, on_commit), which a test wrapped in one never does.
    log_in(client, operator)
    client.post(f"/accounts/reauthenticate/?next={ADMIN}", {"password": PASSWORD})
    page = client.get("/accounts/2fa/totp/activate/").content.decode()
    shown = re.search(r'id="authenticator_secret" value="(\w+)"', page)
    assert shown is not None
    secret = shown.group(1)

    wrong = client.post("/accounts/2fa/totp/activate/", {"code": "000000"})
    activated = client.post(
        "/accounts/2fa/totp/activate/", {"code": fresh_totp_code(secret)}, follow=True
    )

    assert "Incorrect code." in wrong.content.decode()
    assert activated.redirect_chain[-1][0] == "/accounts/2fa/recovery-codes/"
    codes = activated.content.decode()
    assert len(re.findall(r"<li><code>\d{8}</code></li>", codes)) == 10
    assert f'<a class="button" href="{ADMIN}">Continue to the admin</a>' in codes
    assert admin_opens(client)


def test_an_operator_with_an_app_must_give_a_valid_code(client, operator, totp_secret):
    response = log_in(client, operator)
    assert response["Location"] == "/accounts/2fa/authenticate/"
    assert not admin_opens(client)

    wrong = client.post("/accounts/2fa/authenticate/", {"code": "123456"})
    assert wrong.status_code == 200
    assert "Incorrect code." in wrong.content.decode()
    assert not admin_opens(client)

    right = client.post("/accounts/2fa/authenticate/", {"code": fresh_totp_code(totp_secret)})
    assert right.status_code == 302
    assert right["Location"] == ADMIN
    assert admin_opens(client)


def test_codes_past_the_limit_are_refused_even_the_right_one(client, operator, totp_secret):
    log_in(client, operator)

    statuses = [
        client.post("/accounts/2fa/authenticate/", {"code": f"00000{i}"}).status_code
        for i in range(6)
    ]

    # SECOND_FACTOR_RATE, 5 codes per 5 minutes per user (portal/mfa_forms.py).
    assert statuses == [200] * 5 + [429]
    right = client.post("/accounts/2fa/authenticate/", {"code": fresh_totp_code(totp_secret)})
    assert right.status_code == 429
    assert "Too many attempts" in right.content.decode()
    assert not admin_opens(client)


def test_a_recovery_code_signs_in_once(client, operator, totp_secret):
    code = RecoveryCodes.activate(operator).get_unused_codes()[0]
    log_in(client, operator)

    used = client.post("/accounts/2fa/authenticate/", {"code": code})

    assert used["Location"] == ADMIN
    assert admin_opens(client)
    client.post("/admin/logout/")
    assert not admin_opens(client)
    log_in(client, operator)
    again = client.post("/accounts/2fa/authenticate/", {"code": code})
    assert again.status_code == 200
    assert "Incorrect code." in again.content.decode()
    assert not admin_opens(client)


def test_a_session_signed_in_before_enrolling_is_asked_for_a_code(client, operator):
    log_in(client, operator)  # no authenticator app yet: no code asked
    secret = generate_totp_secret()
    TOTP.activate(operator, secret)  # set up later, from another session

    response = client.get(ADMIN, follow=True)

    assert [url for url, _ in response.redirect_chain] == [
        "/admin/login/?next=/admin/",
        "/accounts/2fa/reauthenticate/?next=%2Fadmin%2F",
    ]
    assert (
        "This session signed in without a code from your authenticator app. "
        "Enter one to open the admin." in messages_on(response)
    )
    confirmed = client.post(
        "/accounts/2fa/reauthenticate/", {"code": fresh_totp_code(secret), "next": ADMIN}
    )
    assert confirmed["Location"] == ADMIN
    assert admin_opens(client)


def test_turning_the_app_off_closes_the_admin_until_one_is_set_up_again(
    client, operator, totp_secret
):
    log_in(client, operator)
    client.post("/accounts/2fa/authenticate/", {"code": fresh_totp_code(totp_secret)})
    assert admin_opens(client)

    Authenticator.objects.filter(user=operator, type=Authenticator.Type.TOTP).delete()

    response = client.get(ADMIN)
    assert client.get(response["Location"])["Location"].startswith("/accounts/2fa/totp/activate/")


def test_a_developer_logs_in_to_the_portal_without_a_second_factor(client, owner):
    response = log_in(client, owner, next_url=reverse("portal:dashboard"))

    assert response["Location"] == reverse("portal:dashboard")
    assert client.get(reverse("portal:dashboard")).status_code == 200
    # MFA is there for developers who want it, never pushed on them.
    assert client.get("/accounts/2fa/").status_code == 200
    assert not Authenticator.objects.filter(user=owner).exists()


def test_a_signed_in_developer_is_told_the_admin_is_for_operators(client, owner):
    log_in(client, owner, next_url=reverse("portal:dashboard"))

    response = client.get(ADMIN, follow=True)

    assert response.status_code == 403
    assert "not an operator account" in response.content.decode()
