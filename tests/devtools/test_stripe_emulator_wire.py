"""Wire format: auth, parameter validation, errors, pagination, expand, Idempotency-Key."""

from __future__ import annotations

import pytest
import requests
import stripe

from devtools.stripe_emulator.forms import decode


def _json_body(error: stripe.StripeError) -> dict:
    """The error's decoded body; stripe-python types `json_body` as a bare `object`."""
    assert isinstance(error.json_body, dict)
    return error.json_body


def test_nested_form_keys_decode_to_lists_and_dicts():
    params = decode(
        "line_items[0][price]=p1&line_items[0][quantity]=1&line_items[1][price]=p2"
        "&expand[]=a&expand[]=b&metadata[k]=v&tiers[1][up_to]=inf&tiers[0][up_to]=10"
    )
    assert params == {
        "line_items": [{"price": "p1", "quantity": "1"}, {"price": "p2"}],
        "expand": ["a", "b"],
        "metadata": {"k": "v"},
        "tiers": [{"up_to": "10"}, {"up_to": "inf"}],
    }


def test_secret_key_is_required(stripe_emulator):
    client = stripe.StripeClient("pk_test_nope", base_addresses={"api": stripe_emulator.url})
    with pytest.raises(stripe.AuthenticationError) as caught:
        client.v1.customers.list()
    assert caught.value.http_status == 401
    basic = requests.get(f"{stripe_emulator.url}/v1/customers", auth=("sk_test_abc", ""), timeout=5)
    assert basic.status_code == 200


def test_unknown_parameter_is_a_400(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client.v1.customers.create(params={"emial": "typo@example.com"})
    error = caught.value
    assert error.http_status == 400
    assert error.code == "parameter_unknown"
    assert error.param == "emial"
    assert _json_body(error)["error"]["type"] == "invalid_request_error"


def test_missing_parameter_is_a_400(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client.v1.prices.create(params={"product": "prod_x", "unit_amount": 1})
    assert caught.value.code == "parameter_missing"
    assert caught.value.param == "currency"


def test_unknown_id_is_a_404(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client.v1.customers.retrieve("cus_missing")
    assert caught.value.http_status == 404
    assert caught.value.code == "resource_missing"
    assert "cus_missing" in caught.value.user_message


def test_price_amounts_are_immutable(catalog, stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client.v1.prices.update(catalog.base.id, params={"unit_amount": 1})
    assert caught.value.code == "parameter_unknown"
    price = stripe_client.v1.prices.update(
        catalog.base.id, params={"active": False, "metadata": {"tier": "pro"}}
    )
    assert (price.active, price.metadata["tier"], price.unit_amount) == (False, "pro", 2900)


def test_list_pagination_with_cursors(stripe_client):
    ids = [stripe_client.v1.customers.create(params={"name": f"c{i}"}).id for i in range(5)]
    first = stripe_client.v1.customers.list(params={"limit": 2})
    assert [c.id for c in first.data] == ids[::-1][:2]
    assert first.has_more is True and first.url == "/v1/customers"
    second = stripe_client.v1.customers.list(
        params={"limit": 2, "starting_after": first.data[-1].id}
    )
    assert [c.id for c in second.data] == ids[::-1][2:4]
    back = stripe_client.v1.customers.list(params={"limit": 2, "ending_before": second.data[0].id})
    assert [c.id for c in back.data] == [c.id for c in first.data]
    everything = [
        c.id for c in stripe_client.v1.customers.list(params={"limit": 2}).auto_paging_iter()
    ]
    assert everything == ids[::-1]


def test_expand_replaces_ids_and_shows_includable_fields(catalog, stripe_client):
    plain = stripe_client.v1.prices.retrieve(catalog.metered.id)
    assert plain.product == catalog.product.id
    assert "tiers" not in plain
    expanded = stripe_client.v1.prices.retrieve(
        catalog.metered.id, params={"expand": ["product", "tiers"]}
    )
    assert expanded.product.name == "Pro"
    assert [t.up_to for t in expanded.tiers] == [1000, None]
    listed = stripe_client.v1.prices.list(
        params={"product": catalog.product.id, "expand": ["data.product"]}
    )
    assert {p.product.id for p in listed.data} == {catalog.product.id}


def test_idempotent_replay_and_mismatch(stripe_client, stripe_emulator):
    options = {"idempotency_key": "create-once"}
    first = stripe_client.v1.customers.create(params={"email": "a@example.com"}, options=options)
    again = stripe_client.v1.customers.create(params={"email": "a@example.com"}, options=options)
    assert again.id == first.id
    assert again.last_response.headers.get("Idempotent-Replayed") == "true"
    assert len(stripe_client.v1.customers.list().data) == 1
    with pytest.raises(stripe.IdempotencyError) as caught:
        stripe_client.v1.customers.create(params={"email": "b@example.com"}, options=options)
    assert caught.value.http_status == 400
    assert _json_body(caught.value)["error"]["type"] == "idempotency_error"


def test_metadata_merges_and_unsets(stripe_client):
    customer = stripe_client.v1.customers.create(params={"metadata": {"a": "1", "b": "2"}})
    updated = stripe_client.v1.customers.update(
        customer.id, params={"metadata": {"a": "", "c": "3"}}
    )
    assert updated.metadata.to_dict() == {"b": "2", "c": "3"}
