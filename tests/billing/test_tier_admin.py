"""The Tier admin: operators define tiers and push them to Stripe."""

from decimal import Decimal

import pytest

from billing.models import Tier
from billing.selectors import tier_default
from tests.factories import PaidTierFactory

CHANGELIST = "/admin/billing/tier/"


def _tier_form(tier: Tier, **changes) -> dict:
    data = {
        "name": tier.name,
        "slug": tier.slug,
        "description": tier.description,
        "is_public": "on" if tier.is_public else "",
        "sort_order": tier.sort_order,
        "base_price_cents": tier.base_price_cents,
        "currency": tier.currency,
        "included_units": tier.included_units,
        "rate_limit_per_minute": tier.rate_limit_per_minute,
        "burst": tier.burst or "",
        "scopes": '["basic"]',
        "overage_policy": tier.overage_policy,
        "overage_unit_price_cents": tier.overage_unit_price_cents,
        "spend_cap_cents": tier.spend_cap_cents or "",
        "support_level": tier.support_level,
        "alert_thresholds": "[80, 100, 120]",
    }
    if tier.is_default:
        data["is_default"] = "on"
    data.update(changes)
    return {k: v for k, v in data.items() if v != ""}


@pytest.mark.django_db
def test_push_to_stripe_from_the_changelist(admin_client, stripe_api):
    pro = PaidTierFactory(slug="pro", name="Pro")

    response = admin_client.post(
        CHANGELIST, {"action": "push_to_stripe", "_selected_action": [pro.pk]}, follow=True
    )

    pro.refresh_from_db()
    assert pro.stripe_product is not None
    assert pro.stripe_product.id == "meterdesk_tier_pro"
    # (the admin capitalises messages)
    assert "Pro: created meterdesk_tier_pro" in response.content.decode()
    changelist = admin_client.get(CHANGELIST).content.decode()
    assert "icon-yes.svg" in changelist  # On Stripe


@pytest.mark.django_db
def test_a_failed_push_is_an_admin_message(admin_client, stripe_api):
    pro = PaidTierFactory(slug="pro")
    stripe_api.inject_fault("/v1/billing/meters", status=500, count=1)

    response = admin_client.post(
        CHANGELIST, {"action": "push_to_stripe", "_selected_action": [pro.pk]}, follow=True
    )

    assert response.status_code == 200
    assert "Stripe refused the push" in response.content.decode()


@pytest.mark.django_db
def test_order_and_visibility_are_edited_in_the_list(admin_client):
    free = tier_default()
    pro = PaidTierFactory(slug="pro", sort_order=10, is_public=True)

    response = admin_client.post(
        CHANGELIST,
        {
            "form-TOTAL_FORMS": "2",
            "form-INITIAL_FORMS": "2",
            "form-0-id": free.pk,
            "form-0-sort_order": "5",
            "form-0-is_public": "on",
            "form-1-id": pro.pk,
            "form-1-sort_order": "1",
            "_save": "Save",
        },
    )

    assert response.status_code == 302
    pro.refresh_from_db()
    free.refresh_from_db()
    assert (pro.sort_order, pro.is_public) == (1, False)
    assert free.sort_order == 5


@pytest.mark.django_db
def test_making_another_tier_the_default_moves_the_flag(admin_client):
    free = tier_default()
    starter = PaidTierFactory(slug="starter", name="Starter")

    response = admin_client.post(
        f"{CHANGELIST}{starter.pk}/change/", _tier_form(starter, is_default="on")
    )

    assert response.status_code == 302
    free.refresh_from_db()
    starter.refresh_from_db()
    assert starter.is_default and not free.is_default
    assert tier_default() == starter


@pytest.mark.django_db
def test_the_change_form_shows_stripe_ids_read_only_and_asks_for_a_push_after_a_price_change(
    admin_client, stripe_api
):
    pro = PaidTierFactory(slug="pro")
    admin_client.post(CHANGELIST, {"action": "push_to_stripe", "_selected_action": [pro.pk]})
    pro.refresh_from_db()

    form = admin_client.get(f"{CHANGELIST}{pro.pk}/change/").content.decode()
    assert pro.stripe_base_price is not None
    assert pro.stripe_base_price.id in form
    assert 'name="stripe_base_price"' not in form

    response = admin_client.post(
        f"{CHANGELIST}{pro.pk}/change/", _tier_form(pro, base_price_cents=5900), follow=True
    )
    assert "run “Push to Stripe”" in response.content.decode()


@pytest.mark.django_db
def test_invalid_tiers_are_refused_with_a_reason(admin_client):
    pro = PaidTierFactory(slug="pro")

    response = admin_client.post(
        f"{CHANGELIST}{pro.pk}/change/",
        _tier_form(pro, overage_unit_price_cents=Decimal(0), scopes='"basic"'),
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "overage_unit_price_cents" in errors and "scopes" in errors
