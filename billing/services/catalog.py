"""Tiers → Stripe: each tier's Product, its licensed base Price and metered Price, and the one
billing Meter they all report to. Tiers are rows an operator edits; Stripe gets a copy."""

from dataclasses import dataclass, field
from typing import Any

import stripe
from django.conf import settings
from django.contrib.auth.models import User
from djstripe.models import Price, Product
from stripe.params import PriceCreateParams, PriceUpdateParams, ProductCreateParams

from billing import stripe_specs
from billing.models import Tier
from billing.services.errors import BillingError
from billing.stripe_api import as_dict, is_missing, stripe_client
from billing.stripe_idempotency import create_once
from portal.audit import audit_record


@dataclass
class TierSyncResult:
    tier: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.archived)

    def describe(self) -> str:
        if not self.changed:
            return f"{self.tier}: up to date"
        parts = [
            f"{label} {', '.join(ids)}"
            for label, ids in (
                ("created", self.created),
                ("updated", self.updated),
                ("archived", self.archived),
            )
            if ids
        ]
        return f"{self.tier}: {'; '.join(parts)}"


def meter_ensure(*, client: stripe.StripeClient | None = None) -> str:
    """The id of the one billing Meter all tiers report to, found by event name or created.

    Its aggregation and mappings cannot be changed on Stripe once created, so a meter with the
    same event name but another shape is an error for the operator to resolve, not something
    to paper over.
    """
    client = client or stripe_client()
    event_name = settings.STRIPE_METER_EVENT_NAME
    for meter in client.v1.billing.meters.list(
        params={"status": "active", "limit": 100}
    ).auto_paging_iter():
        if meter.event_name != event_name:
            continue
        found = as_dict(meter)
        if (
            found["default_aggregation"]["formula"] != "sum"
            or found["customer_mapping"]["event_payload_key"] != "stripe_customer_id"
            or found["value_settings"]["event_payload_key"] != "value"
        ):
            raise BillingError(
                f"The Stripe meter {found['id']} for '{event_name}' does not sum 'value' per "
                "'stripe_customer_id'; deactivate it in Stripe or set STRIPE_METER_EVENT_NAME."
            )
        return found["id"]

    # Looked up above by event name, so a create whose 500 hid a success is found next time;
    # a replayed 500 moves on to the next key (billing.stripe_idempotency).
    def create(key: str) -> Any:
        return client.v1.billing.meters.create(
            params={
                "display_name": stripe_specs.METER_DISPLAY_NAME,
                "event_name": event_name,
                "default_aggregation": {"formula": "sum"},
                "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
                "value_settings": {"event_payload_key": "value"},
            },
            options={"idempotency_key": key},
        )

    return create_once(create, "meter", event_name).id


def _product_ensure(client: stripe.StripeClient, tier: Tier, result: TierSyncResult) -> dict:
    candidates = [stripe_specs.product_id(tier)]
    if tier.stripe_product is not None and tier.stripe_product.id not in candidates:
        candidates.insert(0, tier.stripe_product.id)
    for product_id in candidates:
        try:
            product = as_dict(client.v1.products.retrieve(product_id))
        except stripe.InvalidRequestError as error:
            if is_missing(error):
                continue
            raise
        changes = stripe_specs.product_changes(tier, product)
        if changes:
            product = as_dict(client.v1.products.update(product_id, params=changes))
            result.updated.append(product_id)
        return product
    params: ProductCreateParams = {
        "id": stripe_specs.product_id(tier),
        **stripe_specs.product_params(tier),
    }
    if not params["description"]:
        del params["description"]
    # The id is fixed, so no second product can ever be made; a replayed 500 moves on to the
    # next key (billing.stripe_idempotency).
    product = as_dict(
        create_once(
            lambda key: client.v1.products.create(params=params, options={"idempotency_key": key}),
            "product",
            params,
        )
    )
    result.created.append(product["id"])
    return product


def _price_current(client: stripe.StripeClient, key: str) -> dict | None:
    """The active price under ``key``. None: no active price holds it (an archived one may)."""
    prices = client.v1.prices.list(
        params={"lookup_keys": [key], "active": True, "expand": ["data.tiers"], "limit": 1}
    )
    return as_dict(prices.data[0]) if prices.data else None


def _price_archived_match(client: stripe.StripeClient, params: PriceCreateParams) -> dict | None:
    """An archived price of the tier's product that bills exactly what ``params`` would: the
    one under the lookup key if it matches, else the newest.

    Listing prices returns active ones only unless ``active`` is given ("For the list of
    inactive prices, set `active` to false", List all prices,
    https://docs.stripe.com/api/prices/list), so archived ones are asked for explicitly. They
    are looked for by product, not only by lookup key: a price replaced by ours lost its key to
    the replacement (``transfer_lookup_key``), so a tier whose amount went back to an earlier
    one finds that earlier price here and no third price is created.
    """
    found = None
    for price in client.v1.prices.list(
        params={
            "product": params["product"],
            "active": False,
            "type": "recurring",
            "expand": ["data.tiers"],
            "limit": 100,
        }
    ).auto_paging_iter():
        candidate = as_dict(price)
        if not stripe_specs.price_matches(params, candidate):
            continue
        if candidate.get("lookup_key") == params["lookup_key"]:
            return candidate
        found = found or candidate
    return found


def _price_reactivate(
    client: stripe.StripeClient, archived: dict, key: str, result: TierSyncResult
) -> dict:
    changes: PriceUpdateParams = {"active": True, "expand": ["tiers"]}
    if archived.get("lookup_key") != key:
        # "If set to true, will atomically remove the lookup key from the existing price, and
        # assign it to this price." (Update a price, https://docs.stripe.com/api/prices/update)
        changes["lookup_key"] = key
        changes["transfer_lookup_key"] = True
    price = as_dict(client.v1.prices.update(archived["id"], params=changes))
    result.updated.append(price["id"])
    return price


def _price_archive(client: stripe.StripeClient, price_id: str, result: TierSyncResult) -> dict:
    price = as_dict(
        client.v1.prices.update(price_id, params={"active": False, "expand": ["tiers"]})
    )
    result.archived.append(price_id)
    return price


def _stored_price_archive(
    client: stripe.StripeClient, stored: Price, result: TierSyncResult
) -> None:
    """Archive a price our database links to, on Stripe and in dj-stripe's copy. One Stripe no
    longer knows (another account, a restarted emulator) has nothing left to sell."""
    try:
        Price.sync_from_stripe_data(_price_archive(client, stored.id, result))
    except stripe.InvalidRequestError as error:
        if not is_missing(error):
            raise


def _price_ensure(
    client: stripe.StripeClient,
    params: PriceCreateParams,
    stored: Price | None,
    result: TierSyncResult,
) -> tuple[dict, list[dict]]:
    """The price matching ``params`` (kept; an archived one reactivated; or created to replace
    the current one) and the prices archived on the way."""
    archived: list[dict] = []
    current = _price_current(client, params["lookup_key"])
    if current is not None and stripe_specs.price_matches(params, current):
        price = current
    else:
        earlier = _price_archived_match(client, params)
        if earlier is not None:
            price = _price_reactivate(client, earlier, params["lookup_key"], result)
        else:
            previous_id = current["id"] if current else None
            # Looked up above by lookup key, so a create whose 500 hid a success is found next
            # time; a replayed 500 moves on to the next key (billing.stripe_idempotency).
            price = as_dict(
                create_once(
                    lambda key: client.v1.prices.create(
                        params={**params, "transfer_lookup_key": True, "expand": ["tiers"]},
                        options={"idempotency_key": key},
                    ),
                    "price",
                    params,
                    previous_id,
                )
            )
            result.created.append(price["id"])
        if current is not None:
            archived.append(_price_archive(client, current["id"], result))
    # A price our database links to that is no longer the one under the lookup key (the key
    # was moved in the dashboard; a crash between creating a price and saving the link) is
    # archived too, so nobody is sold two prices for one tier.
    done = {price["id"], *(p["id"] for p in archived)}
    if stored is not None and stored.id not in done and stored.active:
        _stored_price_archive(client, stored, result)
    return price, archived


def tier_sync_to_stripe(
    *,
    tier: Tier,
    meter_id: str | None = None,
    actor: User | None = None,
    client: stripe.StripeClient | None = None,
) -> TierSyncResult:
    """Push one tier to Stripe: its Product, a licensed monthly base Price and a metered Price
    on the billing meter. Objects that already match are left alone, so a second run makes no
    write at all; a changed amount creates a new Price and archives the old one.

    A free tier (nothing to charge) needs no Stripe objects; if it was paid before, its prices
    are archived so nobody can buy them any more, and the product stays for the subscriptions
    still on it.
    """
    client = client or stripe_client()
    meter_id = meter_id or meter_ensure(client=client)
    result = TierSyncResult(tier=tier.slug)
    before = _tier_stripe_ids(tier)

    if not tier.is_paid:
        for stored in (tier.stripe_base_price, tier.stripe_metered_price):
            if stored is not None and stored.active:
                _stored_price_archive(client, stored, result)
        tier.stripe_base_price = None
        tier.stripe_metered_price = None
    else:
        product = _product_ensure(client, tier, result)
        product_row = Product.sync_from_stripe_data(product)
        base = None
        if tier.base_price_cents > 0:
            base, archived = _price_ensure(
                client,
                stripe_specs.base_price_params(tier, product["id"]),
                tier.stripe_base_price,
                result,
            )
            for price in archived:
                Price.sync_from_stripe_data(price)
        elif tier.stripe_base_price is not None and tier.stripe_base_price.active:
            # Now pay-as-you-go: no monthly fee to sell any more.
            _stored_price_archive(client, tier.stripe_base_price, result)
        metered, archived = _price_ensure(
            client,
            stripe_specs.metered_price_params(tier, product["id"], meter_id),
            tier.stripe_metered_price,
            result,
        )
        for price in archived:
            Price.sync_from_stripe_data(price)
        tier.stripe_product = product_row
        tier.stripe_base_price = Price.sync_from_stripe_data(base) if base else None
        tier.stripe_metered_price = Price.sync_from_stripe_data(metered)

    tier.stripe_meter_id = meter_id
    Tier.objects.filter(pk=tier.pk).update(
        stripe_product=tier.stripe_product,
        stripe_base_price=tier.stripe_base_price,
        stripe_metered_price=tier.stripe_metered_price,
        stripe_meter_id=meter_id,
    )
    after = _tier_stripe_ids(tier)
    if result.changed or before != after:
        audit_record(
            actor=actor,
            action="tier.sync_to_stripe",
            target=tier.slug,
            before=before,
            after=after,
            reason=result.describe(),
        )
    return result


def _tier_stripe_ids(tier: Tier) -> dict[str, str]:
    return {
        "product": tier.stripe_product.id if tier.stripe_product else "",
        "base_price": tier.stripe_base_price.id if tier.stripe_base_price else "",
        "metered_price": tier.stripe_metered_price.id if tier.stripe_metered_price else "",
        "meter": tier.stripe_meter_id,
    }


def tiers_sync_to_stripe(
    *, tiers: list[Tier] | None = None, actor: User | None = None
) -> list[TierSyncResult]:
    """Push every tier (or the given ones) to Stripe with one meter lookup."""
    client = stripe_client()
    meter_id = meter_ensure(client=client)
    chosen = (
        tiers
        if tiers is not None
        else list(
            Tier.objects.select_related(
                "stripe_product", "stripe_base_price", "stripe_metered_price"
            )
        )
    )
    return [
        tier_sync_to_stripe(tier=tier, meter_id=meter_id, actor=actor, client=client)
        for tier in chosen
    ]
