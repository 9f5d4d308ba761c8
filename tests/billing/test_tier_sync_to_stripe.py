"""billing.services.tier_sync_to_stripe / tiers_sync_to_stripe against the Stripe emulator."""

from decimal import Decimal
from urllib.parse import urlsplit

import pytest
import stripe
from djstripe.models import Price

from billing import stripe_specs
from billing.models import Tier
from billing.services.catalog import tier_sync_to_stripe, tiers_sync_to_stripe
from portal.models import AuditEntry
from tests.factories import PaidTierFactory, TierFactory


def _writes(emulator) -> int:
    return emulator.request_count("/v1/", method="POST")


@pytest.mark.django_db
def test_a_paid_tier_gets_a_product_a_base_price_and_a_metered_price_on_the_meter(
    stripe_api, stripe_client, settings
):
    tier = PaidTierFactory(
        slug="pro",
        name="Pro",
        base_price_cents=2900,
        included_units=50_000,
        overage_unit_price_cents=Decimal("0.1"),
    )

    result = tier_sync_to_stripe(tier=tier)

    tier.refresh_from_db()
    assert result.changed
    assert tier.stripe_product is not None
    assert tier.stripe_base_price is not None and tier.stripe_metered_price is not None
    product = stripe_client.v1.products.retrieve(tier.stripe_product.id)
    assert (product.name, product.metadata["meterdesk_tier"]) == ("Pro", "pro")
    base = stripe_client.v1.prices.retrieve(tier.stripe_base_price.id)
    assert (base.unit_amount, base.currency, base.recurring.interval) == (2900, "usd", "month")
    assert base.recurring.usage_type == "licensed"
    metered = stripe_client.v1.prices.retrieve(
        tier.stripe_metered_price.id, params={"expand": ["tiers"]}
    )
    assert metered.recurring.usage_type == "metered"
    assert metered.recurring.meter == tier.stripe_meter_id
    assert (metered.billing_scheme, metered.tiers_mode) == ("tiered", "graduated")
    assert [(t.up_to, t.unit_amount_decimal) for t in metered.tiers] == [
        (50_000, Decimal("0")),
        (None, Decimal("0.1")),
    ]
    meter = stripe_client.v1.billing.meters.retrieve(tier.stripe_meter_id)
    assert meter.event_name == settings.STRIPE_METER_EVENT_NAME
    assert meter.default_aggregation.formula == "sum"
    assert meter.customer_mapping.event_payload_key == "stripe_customer_id"
    assert meter.value_settings.event_payload_key == "value"
    # Stored through dj-stripe, so the admin and the billing pages read them locally.
    assert tier.stripe_product.name == "Pro"
    assert tier.stripe_base_price.product == tier.stripe_product


@pytest.mark.django_db
def test_a_second_run_creates_and_changes_nothing(stripe_api):
    TierFactory(slug="free-plan", is_default=False)
    PaidTierFactory(slug="pro")
    PaidTierFactory(slug="team", base_price_cents=9900)
    tiers_sync_to_stripe()
    writes_after_first_run = _writes(stripe_api)
    ids = list(
        Tier.objects.order_by("slug").values_list(
            "slug",
            "stripe_product__id",
            "stripe_base_price__id",
            "stripe_metered_price__id",
            "stripe_meter_id",
        )
    )
    audits = AuditEntry.objects.count()

    results = tiers_sync_to_stripe()

    assert _writes(stripe_api) == writes_after_first_run
    assert not any(result.changed for result in results)
    assert ids == list(
        Tier.objects.order_by("slug").values_list(
            "slug",
            "stripe_product__id",
            "stripe_base_price__id",
            "stripe_metered_price__id",
            "stripe_meter_id",
        )
    )
    assert AuditEntry.objects.count() == audits
    assert stripe_api.request_count("/v1/billing/meters", method="POST") == 1


@pytest.mark.django_db
def test_a_price_change_creates_a_new_price_and_archives_the_old_one(stripe_api, stripe_client):
    tier = PaidTierFactory(slug="pro", base_price_cents=2900)
    tier_sync_to_stripe(tier=tier)
    tier.refresh_from_db()
    assert tier.stripe_base_price is not None and tier.stripe_metered_price is not None
    old_base, old_metered = tier.stripe_base_price.id, tier.stripe_metered_price.id

    tier.base_price_cents = 3900
    tier.save()
    result = tier_sync_to_stripe(tier=tier)

    tier.refresh_from_db()
    assert tier.stripe_base_price.id != old_base
    assert stripe_client.v1.prices.retrieve(tier.stripe_base_price.id).unit_amount == 3900
    assert stripe_client.v1.prices.retrieve(old_base).active is False
    assert Price.objects.get(id=old_base).active is False
    # The metered price did not change, so it is kept.
    assert tier.stripe_metered_price.id == old_metered
    assert result.created == [tier.stripe_base_price.id] and result.archived == [old_base]
    # The lookup key moved to the new price.
    found = stripe_client.v1.prices.list(params={"lookup_keys": ["meterdesk_pro_base"]})
    assert [p.id for p in found.data] == [tier.stripe_base_price.id]
    entry = AuditEntry.objects.filter(action="tier.sync_to_stripe").first()
    assert entry is not None
    assert entry.before["base_price"] == old_base
    assert entry.after["base_price"] == tier.stripe_base_price.id


@pytest.mark.django_db
def test_an_overage_change_replaces_only_the_metered_price(stripe_api, stripe_client):
    tier = PaidTierFactory(slug="pro", overage_unit_price_cents=Decimal("0.05"))
    tier_sync_to_stripe(tier=tier)
    tier.refresh_from_db()
    assert tier.stripe_base_price is not None and tier.stripe_metered_price is not None
    old_base, old_metered = tier.stripe_base_price.id, tier.stripe_metered_price.id

    tier.overage_unit_price_cents = Decimal("0.04")
    tier.save()
    tier_sync_to_stripe(tier=tier)

    tier.refresh_from_db()
    assert tier.stripe_base_price.id == old_base
    assert tier.stripe_metered_price.id != old_metered
    assert stripe_client.v1.prices.retrieve(old_metered).active is False


@pytest.mark.django_db
def test_a_block_tier_bills_nothing_past_its_included_units(stripe_api, stripe_client):
    tier = PaidTierFactory(
        slug="starter",
        base_price_cents=900,
        included_units=10_000,
        overage_policy=Tier.OveragePolicy.BLOCK,
        overage_unit_price_cents=Decimal("0.5"),
    )

    tier_sync_to_stripe(tier=tier)

    tier.refresh_from_db()
    assert tier.stripe_metered_price is not None
    metered = stripe_client.v1.prices.retrieve(
        tier.stripe_metered_price.id, params={"expand": ["tiers"]}
    )
    assert [(t.up_to, t.unit_amount_decimal) for t in metered.tiers] == [
        (10_000, Decimal("0")),
        (None, Decimal("0")),
    ]


@pytest.mark.django_db
def test_a_free_tier_needs_no_stripe_objects(stripe_api):
    tier = TierFactory(slug="hobby", base_price_cents=0, overage_policy=Tier.OveragePolicy.BLOCK)

    result = tier_sync_to_stripe(tier=tier)

    tier.refresh_from_db()
    assert not result.changed
    assert tier.stripe_product is None and tier.stripe_base_price is None
    assert stripe_api.request_count("/v1/products", method="POST") == 0
    assert stripe_api.request_count("/v1/prices", method="POST") == 0


@pytest.mark.django_db
def test_a_paid_tier_made_free_can_no_longer_be_bought(stripe_api, stripe_client):
    tier = PaidTierFactory(slug="pro")
    tier_sync_to_stripe(tier=tier)
    tier.refresh_from_db()
    assert tier.stripe_base_price is not None and tier.stripe_metered_price is not None
    base, metered = tier.stripe_base_price.id, tier.stripe_metered_price.id

    tier.base_price_cents = 0
    tier.overage_policy = Tier.OveragePolicy.BLOCK
    tier.save()
    tier_sync_to_stripe(tier=tier)

    tier.refresh_from_db()
    assert tier.stripe_base_price is None and tier.stripe_metered_price is None
    assert stripe_client.v1.prices.retrieve(base).active is False
    assert stripe_client.v1.prices.retrieve(metered).active is False


@pytest.mark.django_db
def test_a_renamed_tier_updates_its_product_in_place(stripe_api, stripe_client):
    tier = PaidTierFactory(slug="pro", name="Pro")
    tier_sync_to_stripe(tier=tier)
    tier.refresh_from_db()
    assert tier.stripe_product is not None
    product_id = tier.stripe_product.id

    tier.name = "Professional"
    tier.save()
    result = tier_sync_to_stripe(tier=tier)

    tier.refresh_from_db()
    assert result.updated == [product_id] and not result.created
    assert stripe_client.v1.products.retrieve(product_id).name == "Professional"
    assert tier.stripe_product.name == "Professional"


@pytest.mark.django_db
def test_a_stripe_account_that_lost_everything_is_filled_again(stripe_api, stripe_client):
    """The emulator restarted (or another Stripe account): stale links are replaced."""
    tier = PaidTierFactory(slug="pro")
    tier_sync_to_stripe(tier=tier)
    stripe_api.reset()

    result = tier_sync_to_stripe(tier=tier)

    tier.refresh_from_db()
    assert result.created
    assert tier.stripe_base_price is not None
    assert stripe_client.v1.prices.retrieve(tier.stripe_base_price.id).active is True
    assert stripe_client.v1.billing.meters.retrieve(tier.stripe_meter_id).status == "active"


@pytest.mark.django_db
def test_every_request_of_a_sync_carries_the_pinned_api_version(stripe_api, settings, monkeypatch):
    """Our client and dj-stripe's module-level calls alike (it lists a product's features with
    ``stripe.Product.list_features`` and no version of its own). A request without our pinned
    version gets the SDK's, or the account's default: "your API calls to Stripe use the API
    version that was current when the SDK was released" (Set a Stripe API version,
    https://docs.stripe.com/sdks/set-version)."""
    sent: list[tuple[str, str | None]] = []
    request = stripe.RequestsClient.request

    def recording(self, method, url, headers, post_data=None):
        sent.append((urlsplit(url).path, (headers or {}).get("Stripe-Version")))
        return request(self, method, url, headers, post_data)

    monkeypatch.setattr(stripe.RequestsClient, "request", recording)
    tier = PaidTierFactory(slug="pro", name="Pro", base_price_cents=2900)

    tiers_sync_to_stripe(tiers=[tier])

    assert f"/v1/products/{stripe_specs.product_id(tier)}/features" in {path for path, _ in sent}
    assert {path: version for path, version in sent if version != settings.STRIPE_API_VERSION} == {}


def _price_ids(tier: Tier) -> tuple[str, str]:
    """The ids of the base and metered prices the tier links to, as saved."""
    tier.refresh_from_db()
    assert tier.stripe_base_price is not None and tier.stripe_metered_price is not None
    return tier.stripe_base_price.id, tier.stripe_metered_price.id


def _prices(client, **filters) -> list:
    """Every price on the emulator, active or archived (the list shows active ones only unless
    ``active`` is given)."""
    return [
        price
        for active in (True, False)
        for price in client.v1.prices.list(
            params={"active": active, "limit": 100, **filters}
        ).auto_paging_iter()
    ]


@pytest.mark.django_db
def test_a_500_on_creating_the_product_does_not_block_the_next_sync(stripe_api, stripe_client):
    """Stripe replays a saved 500 for the same Idempotency-Key for 24 hours (Idempotent
    requests, https://docs.stripe.com/api/idempotent_requests): the next sync must not send
    the failed request's key again, nor create a second product."""
    tier = PaidTierFactory(slug="pro", name="Pro")
    stripe_api.inject_fault("/v1/products", status=500, count=1, method="POST")
    with pytest.raises(stripe.APIError):
        tiers_sync_to_stripe(tiers=[tier])

    tiers_sync_to_stripe(tiers=[tier])

    tier.refresh_from_db()
    products = stripe_client.v1.products.list(params={"limit": 100}).data
    assert [product.id for product in products] == [stripe_specs.product_id(tier)]
    assert tier.stripe_product is not None and tier.stripe_product.name == "Pro"
    assert {price.id for price in _prices(stripe_client)} == set(_price_ids(tier))


@pytest.mark.django_db
def test_a_500_on_creating_a_price_does_not_block_the_next_sync(stripe_api, stripe_client):
    tier = PaidTierFactory(slug="pro", base_price_cents=2900)
    stripe_api.inject_fault("/v1/prices", status=500, count=1, method="POST")
    with pytest.raises(stripe.APIError):
        tiers_sync_to_stripe(tiers=[tier])

    tiers_sync_to_stripe(tiers=[tier])

    base, metered = _price_ids(tier)
    assert {p.id: p.active for p in _prices(stripe_client)} == {base: True, metered: True}
    assert stripe_client.v1.prices.retrieve(base).unit_amount == 2900
    # The failed request's key was replayed once, then the next key created the price.
    assert stripe_api.request_count("/v1/prices", method="POST") == 4


@pytest.mark.django_db
def test_a_price_created_behind_a_500_is_found_not_created_again(stripe_api, stripe_client):
    """Stripe did the work and still answered 500: the next sync finds the price under its
    lookup key instead of creating another one to sell beside it."""
    tier = PaidTierFactory(slug="pro", base_price_cents=2900)
    stripe_api.inject_fault("/v1/prices", status=500, count=1, method="POST", apply=True)
    with pytest.raises(stripe.APIError):
        tiers_sync_to_stripe(tiers=[tier])
    [created_behind_the_500] = _prices(stripe_client)

    tiers_sync_to_stripe(tiers=[tier])

    assert _price_ids(tier)[0] == created_behind_the_500.id
    assert len(_prices(stripe_client)) == 2


@pytest.mark.django_db
def test_a_500_on_creating_the_meter_does_not_block_the_next_sync(stripe_api, stripe_client):
    tier = PaidTierFactory(slug="pro")
    stripe_api.inject_fault("/v1/billing/meters", status=500, count=1, method="POST")
    with pytest.raises(stripe.APIError):
        tiers_sync_to_stripe(tiers=[tier])

    tiers_sync_to_stripe(tiers=[tier])

    tier.refresh_from_db()
    meters = stripe_client.v1.billing.meters.list(params={"limit": 100}).data
    assert [meter.id for meter in meters] == [tier.stripe_meter_id]


@pytest.mark.django_db
def test_a_price_changed_and_changed_back_reactivates_the_original(stripe_api, stripe_client):
    """The original price lost its lookup key to its replacement; going back to its amount
    finds it among the archived prices (listed only with ``active=false``, List all prices,
    https://docs.stripe.com/api/prices/list) and sells it again, with no third price."""
    tier = PaidTierFactory(slug="pro", base_price_cents=2900)
    tier_sync_to_stripe(tier=tier)
    original, _ = _price_ids(tier)
    tier.base_price_cents = 3900
    tier.save()
    tier_sync_to_stripe(tier=tier)
    replacement, _ = _price_ids(tier)

    tier.base_price_cents = 2900
    tier.save()
    result = tier_sync_to_stripe(tier=tier)

    assert _price_ids(tier)[0] == original
    assert (result.created, result.updated, result.archived) == ([], [original], [replacement])
    base_prices = {p.id: p.active for p in _prices(stripe_client) if p.unit_amount}
    assert base_prices == {original: True, replacement: False}
    found = stripe_client.v1.prices.list(params={"lookup_keys": ["meterdesk_pro_base"]})
    assert [p.id for p in found.data] == [original]
    assert Price.objects.get(id=original).active is True
    assert Price.objects.get(id=replacement).active is False


@pytest.mark.django_db
def test_a_paid_tier_made_free_and_paid_again_sells_its_old_prices_again(stripe_api, stripe_client):
    """Archived with their lookup keys kept, the old prices are reactivated, not duplicated."""
    tier = PaidTierFactory(slug="pro", base_price_cents=2900)
    tier_sync_to_stripe(tier=tier)
    prices = set(_price_ids(tier))
    policy = tier.overage_policy
    tier.base_price_cents, tier.overage_policy = 0, Tier.OveragePolicy.BLOCK
    tier.save()
    tier_sync_to_stripe(tier=tier)

    tier.base_price_cents, tier.overage_policy = 2900, policy
    tier.save()
    result = tier_sync_to_stripe(tier=tier)

    assert set(_price_ids(tier)) == prices
    assert not result.created and set(result.updated) == prices
    assert {p.id for p in _prices(stripe_client)} == prices
    assert all(p.active for p in _prices(stripe_client))
