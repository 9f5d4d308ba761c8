from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from billing.models import Tier
from portal.management.commands.seed_demo import DEMO_ADMIN, DEMO_DEVELOPER
from tests.billing.conftest import stripe_api  # noqa: F401 - the emulator-backed Stripe fixture

pytestmark = pytest.mark.django_db


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_seed_demo_pushes_three_tiers_to_stripe_and_prints_both_logins(stripe_api):  # noqa: F811
    output = seed()

    tiers = {tier.slug: tier for tier in Tier.objects.all()}
    assert set(tiers) == {"free", "pro", "enterprise"}
    assert tiers["free"].is_default
    assert tiers["pro"].stripe_metered_price is not None
    assert tiers["enterprise"].stripe_meter_id == tiers["pro"].stripe_meter_id != ""
    assert f"{DEMO_DEVELOPER[0]} / {DEMO_DEVELOPER[1]}" in output
    assert f"{DEMO_ADMIN[0]} / {DEMO_ADMIN[1]}" in output
    developer = get_user_model().objects.get(email=DEMO_DEVELOPER[0])
    assert developer.check_password(DEMO_DEVELOPER[1])
    assert developer.owned_accounts.get().tier == tiers["free"]
    assert get_user_model().objects.get(email=DEMO_ADMIN[0]).is_superuser


def test_seeding_twice_changes_nothing(stripe_api):  # noqa: F811
    seed()
    posts = stripe_api.request_count("/v1/", method="POST")

    seed()

    assert Tier.objects.count() == 3
    assert get_user_model().objects.count() == 2
    assert stripe_api.request_count("/v1/", method="POST") == posts


def test_an_operators_edits_survive_a_new_seed(stripe_api):  # noqa: F811
    seed()
    Tier.objects.filter(slug="pro").update(included_units=123)

    seed()

    assert Tier.objects.get(slug="pro").included_units == 123


def test_seed_demo_refuses_to_run_in_production(settings):
    settings.PRODUCTION = True

    with pytest.raises(CommandError, match="production"):
        call_command("seed_demo", "--no-stripe")
