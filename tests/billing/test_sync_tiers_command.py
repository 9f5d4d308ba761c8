"""manage.py sync_tiers"""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from billing.selectors import tier_default
from tests.factories import PaidTierFactory


@pytest.mark.django_db
def test_the_command_pushes_every_tier_and_a_rerun_reports_them_up_to_date(stripe_api):
    tier_default()
    PaidTierFactory(slug="pro")
    first, second = StringIO(), StringIO()

    call_command("sync_tiers", stdout=first)
    call_command("sync_tiers", stdout=second)

    assert "pro: created meterdesk_tier_pro" in first.getvalue()
    assert second.getvalue().splitlines() == ["free: up to date", "pro: up to date"]


@pytest.mark.django_db
def test_the_command_can_push_chosen_tiers(stripe_api):
    PaidTierFactory(slug="pro")
    PaidTierFactory(slug="team")
    out = StringIO()

    call_command("sync_tiers", "team", stdout=out)

    assert out.getvalue().startswith("team: created")
    assert "pro" not in out.getvalue()


@pytest.mark.django_db
def test_an_unknown_slug_is_an_error(stripe_api):
    with pytest.raises(CommandError, match="No tier with slug nope"):
        call_command("sync_tiers", "nope", stdout=StringIO())


@pytest.mark.django_db
def test_stripe_refusing_is_a_clear_error(stripe_api):
    PaidTierFactory(slug="pro")
    stripe_api.inject_fault("/v1/billing/meters", status=500, count=1)

    with pytest.raises(CommandError, match="Stripe refused the sync"):
        call_command("sync_tiers", stdout=StringIO())
