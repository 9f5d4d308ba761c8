"""List defaults of the catalog: "Returns a list of your active prices ... For the list of inactive
prices, set active to false" (List all prices, https://docs.stripe.com/api/prices/list); products
are all listed unless `active` is given (List all products,
https://docs.stripe.com/api/products/list)."""

from __future__ import annotations


def test_price_list_shows_active_prices_unless_active_is_given(catalog, stripe_client):
    stripe_client.v1.prices.update(catalog.base.id, params={"active": False})
    listed = stripe_client.v1.prices.list(params={"product": catalog.product.id})
    assert [p.id for p in listed.data] == [catalog.metered.id]
    inactive = stripe_client.v1.prices.list(params={"active": False})
    assert [p.id for p in inactive.data] == [catalog.base.id]
    # A lookup key does not widen the default: the archived price under it is not listed.
    by_key = stripe_client.v1.prices.list(params={"lookup_keys": ["pro_base"]})
    assert by_key.data == []
    by_key = stripe_client.v1.prices.list(params={"lookup_keys": ["pro_base"], "active": False})
    assert [p.id for p in by_key.data] == [catalog.base.id]


def test_product_list_shows_inactive_products_too(catalog, stripe_client):
    archived = stripe_client.v1.products.create(params={"name": "Old", "active": False})
    assert {p.id for p in stripe_client.v1.products.list().data} == {
        catalog.product.id,
        archived.id,
    }
    only_active = stripe_client.v1.products.list(params={"active": True})
    assert [p.id for p in only_active.data] == [catalog.product.id]
