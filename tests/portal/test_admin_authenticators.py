"""The admin's list of second factors: no secret shown, nothing added or edited, a reset."""

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.test import Client
from django.urls import reverse

from tests.factories import StaffUserFactory

pytestmark = pytest.mark.django_db


def test_an_authenticator_page_shows_no_secret_and_changes_nothing(admin_client):
    secret = generate_totp_secret()
    totp = TOTP.activate(StaffUserFactory(), secret).instance
    change_url = reverse("admin:mfa_authenticator_change", args=[totp.pk])

    page = admin_client.get(change_url)
    posted = admin_client.post(change_url, {"type": "totp", "data": '{"secret": "AAAA"}'})

    assert page.status_code == 200
    assert secret not in page.content.decode()
    assert posted.status_code == 403
    assert Authenticator.objects.get(pk=totp.pk).data == totp.data
    assert admin_client.get(reverse("admin:mfa_authenticator_add")).status_code == 403


def test_an_operator_reset_by_another_sets_up_an_app_at_the_next_visit(admin_client):
    colleague = StaffUserFactory(is_superuser=True)
    colleague_client = Client()
    colleague_client.force_login(colleague)  # signed in with their authenticator app
    assert colleague_client.get("/admin/").status_code == 200

    rows = Authenticator.objects.filter(user=colleague)
    admin_client.post(
        reverse("admin:mfa_authenticator_changelist"),
        {"action": "delete_selected", "_selected_action": [row.pk for row in rows], "post": "yes"},
    )

    assert not Authenticator.objects.filter(user=colleague).exists()
    response = colleague_client.get("/admin/")
    assert colleague_client.get(response["Location"])["Location"].startswith(
        "/accounts/2fa/totp/activate/"
    )
