"""Customer portal configurations and sessions, and the actions its hosted page offers.

Stripe's rules reproduced here:
- A configuration lists what the portal lets a customer do; `features.subscription_update`
  lists the products, and for each the prices, a customer may switch to ("The list of up to 10
  products that support subscription updates"). The hosted page offers only those.
  (The Customer portal configuration object,
  https://docs.stripe.com/api/customer_portal/configurations/object)
- `is_default`: "If true, this configuration can be managed in the Dashboard and portal sessions
  will use this configuration unless it is overriden when creating the session." Configurations
  created through the API are never the default; the default is the one saved in the Dashboard,
  which the emulator's control API stands in for (`POST /_emulator/billing_portal/default`).
- Without a `configuration` and without a saved default, creating a session fails: "No
  configuration provided and your test mode default configuration has not been created. Provide a
  configuration or create your default by saving your customer portal settings in test mode at
  https://dashboard.stripe.com/test/settings/billing/portal." (reported in
  https://github.com/usebasejump/basejump/issues/101)
"""

from __future__ import annotations

import copy

from ..billing import (
    PRORATION_BEHAVIORS,
    invoice_now_for_update,
    is_metered,
    item_change_price,
    item_remove,
    subscription_add_item,
    subscription_cancel,
    subscription_items,
)
from ..errors import StripeError, invalid_parameter, missing_parameter
from ..params import ANY, choice, merge_metadata, require, to_bool, to_int, validate
from ..router import route
from ..state import State
from .customers import LIST_PARAMS, card_for_customer

NO_DEFAULT_CONFIGURATION = (
    "No configuration provided and your test mode default configuration has not been created. "
    "Provide a configuration or create your default by saving your customer portal settings in "
    "test mode at https://dashboard.stripe.com/test/settings/billing/portal."
)
CANCELLATION_REASONS = [
    "too_expensive",
    "missing_features",
    "switched_service",
    "unused",
    "other",
]

_FEATURES = {
    "customer_update": {"allowed_updates": [None], "enabled": None},
    "invoice_history": {"enabled": None},
    "payment_method_update": {"enabled": None, "payment_method_configuration": None},
    "subscription_cancel": {
        "cancellation_reason": {"enabled": None, "options": [None]},
        "enabled": None,
        "mode": None,
        "proration_behavior": None,
    },
    "subscription_update": {
        "billing_cycle_anchor": None,
        "default_allowed_updates": [None],
        "enabled": None,
        "products": [
            {
                "adjustable_quantity": {"enabled": None, "maximum": None, "minimum": None},
                "prices": [None],
                "product": None,
            }
        ],
        "proration_behavior": None,
        "schedule_at_period_end": ANY,
        "trial_update_behavior": None,
    },
}
_CONFIGURATION_FIELDS = {
    "business_profile": {
        "headline": None,
        "privacy_policy_url": None,
        "terms_of_service_url": None,
    },
    "default_return_url": None,
    "features": _FEATURES,
    "login_page": {"enabled": None},
    "metadata": ANY,
    "name": None,
}


def _default_features() -> dict:
    """Every feature off, as an API-created configuration starts."""
    return {
        "customer_update": {"allowed_updates": [], "enabled": False},
        "invoice_history": {"enabled": False},
        "payment_method_update": {"enabled": False, "payment_method_configuration": None},
        "subscription_cancel": {
            "cancellation_reason": {"enabled": False, "options": list(CANCELLATION_REASONS)},
            "enabled": False,
            "mode": "at_period_end",
            "proration_behavior": "none",
        },
        "subscription_update": {
            "billing_cycle_anchor": None,
            "default_allowed_updates": [],
            "enabled": False,
            "products": [],
            "proration_behavior": "none",
            "schedule_at_period_end": {"conditions": []},
            "trial_update_behavior": "end_trial",
        },
    }


def _flag(section: dict, key: str, name: str) -> bool:
    return to_bool(section[key], name)


def _apply_features(state: State, features: dict, update: dict, creating: bool) -> None:
    """Merge the `features` parameter into a configuration's features, checking it as Stripe
    does: each feature given on create needs `enabled`; an enabled subscription_update needs the
    products (each price must belong to its product) and the allowed updates."""
    store = state.store
    for name, given in update.items():
        if given == "":
            continue
        section = features[name]
        prefix = f"features[{name}]"
        if creating and "enabled" not in given:
            raise missing_parameter(f"{prefix}[enabled]")
        if "enabled" in given:
            section["enabled"] = _flag(given, "enabled", f"{prefix}[enabled]")
        if name == "customer_update" and "allowed_updates" in given:
            section["allowed_updates"] = list(given["allowed_updates"] or [])
        if name == "payment_method_update" and "payment_method_configuration" in given:
            section["payment_method_configuration"] = given["payment_method_configuration"] or None
        if name == "subscription_cancel":
            if "mode" in given:
                section["mode"] = choice(
                    given["mode"], f"{prefix}[mode]", ("at_period_end", "immediately")
                )
            if "proration_behavior" in given:
                section["proration_behavior"] = choice(
                    given["proration_behavior"],
                    f"{prefix}[proration_behavior]",
                    ("create_prorations", "none"),
                )
            reason = given.get("cancellation_reason")
            if reason:
                section["cancellation_reason"] = {
                    "enabled": _flag(reason, "enabled", f"{prefix}[cancellation_reason][enabled]"),
                    "options": list(reason.get("options") or CANCELLATION_REASONS),
                }
        if name == "subscription_update":
            if "default_allowed_updates" in given:
                allowed = list(given["default_allowed_updates"] or [])
                for index, value in enumerate(allowed):
                    choice(
                        value,
                        f"{prefix}[default_allowed_updates][{index}]",
                        ("price", "promotion_code", "quantity"),
                    )
                section["default_allowed_updates"] = allowed
            if "proration_behavior" in given:
                section["proration_behavior"] = choice(
                    given["proration_behavior"],
                    f"{prefix}[proration_behavior]",
                    PRORATION_BEHAVIORS,
                )
            if "billing_cycle_anchor" in given:
                section["billing_cycle_anchor"] = given["billing_cycle_anchor"] or None
            if "products" in given:
                section["products"] = _products(store, given["products"] or [], prefix)
            if section["enabled"]:
                if not section["products"]:
                    raise missing_parameter(f"{prefix}[products]")
                if not section["default_allowed_updates"]:
                    raise missing_parameter(f"{prefix}[default_allowed_updates]")


def _products(store, products: list, prefix: str) -> list[dict]:
    if len(products) > 10:
        raise invalid_parameter(f"{prefix}[products]", "You can list up to 10 products.")
    checked = []
    for index, entry in enumerate(products):
        name = f"{prefix}[products][{index}]"
        if not entry.get("product"):
            raise missing_parameter(f"{name}[product]")
        if not entry.get("prices"):
            raise missing_parameter(f"{name}[prices]")
        product = store.get(entry["product"], "product", f"{name}[product]")
        for price_index, price_id in enumerate(entry["prices"]):
            price = store.get(price_id, "price", f"{name}[prices][{price_index}]")
            if price["product"] != product["id"]:
                raise invalid_parameter(
                    f"{name}[prices][{price_index}]",
                    f"The price `{price_id}` does not belong to the product `{product['id']}`.",
                )
            if price["type"] != "recurring":
                raise invalid_parameter(
                    f"{name}[prices][{price_index}]",
                    f"The price `{price_id}` is not a recurring price.",
                )
        quantity = entry.get("adjustable_quantity") or {}
        checked.append(
            {
                "adjustable_quantity": {
                    "enabled": to_bool(quantity.get("enabled", "false"), f"{name}[enabled]"),
                    "maximum": to_int(quantity["maximum"], "maximum")
                    if quantity.get("maximum")
                    else None,
                    "minimum": to_int(quantity.get("minimum", 1), "minimum"),
                },
                "prices": list(entry["prices"]),
                "product": product["id"],
            }
        )
    return checked


def configuration_create(state: State, params: dict, is_default: bool = False) -> dict:
    store = state.store
    now = store.now()
    features = _default_features()
    _apply_features(state, features, params.get("features") or {}, creating=True)
    profile = params.get("business_profile") or {}
    configuration = store.add(
        {
            "id": store.new_id("bpc"),
            "object": "billing_portal.configuration",
            "active": True,
            "application": None,
            "business_profile": {
                "headline": profile.get("headline") or None,
                "privacy_policy_url": profile.get("privacy_policy_url") or None,
                "terms_of_service_url": profile.get("terms_of_service_url") or None,
            },
            "created": now,
            "default_return_url": params.get("default_return_url") or None,
            "features": features,
            "is_default": is_default,
            "livemode": False,
            "login_page": {"enabled": False, "url": None},
            "metadata": merge_metadata({}, params.get("metadata")),
            "name": params.get("name") or None,
            "updated": now,
        }
    )
    state.emit("billing_portal.configuration.created", configuration)
    return configuration


def configuration_update(state: State, configuration: dict, params: dict) -> dict:
    before = state.snapshot(configuration)
    if "active" in params:
        active = to_bool(params["active"], "active")
        if not active and configuration["is_default"]:
            raise invalid_parameter("active", "You can't deactivate the default configuration.")
        configuration["active"] = active
    if "default_return_url" in params:
        configuration["default_return_url"] = params["default_return_url"] or None
    for key, value in (params.get("business_profile") or {}).items():
        configuration["business_profile"][key] = value or None
    if params.get("features"):
        features = copy.deepcopy(configuration["features"])
        _apply_features(state, features, params["features"], creating=False)
        configuration["features"] = features
    if "name" in params:
        configuration["name"] = params["name"] or None
    if "login_page" in params:
        enabled = to_bool((params["login_page"] or {}).get("enabled", "false"), "login_page")
        configuration["login_page"] = {
            "enabled": enabled,
            "url": f"{state.base_url}/p/login/{configuration['id']}" if enabled else None,
        }
    configuration["metadata"] = merge_metadata(configuration["metadata"], params.get("metadata"))
    configuration["updated"] = state.store.now()
    state.emit("billing_portal.configuration.updated", configuration, before)
    return configuration


def default_configuration_save(state: State, params: dict) -> dict:
    """What saving the customer portal settings in the Dashboard does: create or update the
    account's default configuration (the control API's `POST /_emulator/billing_portal/default`)."""
    validate(params, {k: v for k, v in _CONFIGURATION_FIELDS.items() if k != "metadata"})
    existing = default_configuration(state)
    if existing is None:
        return configuration_create(state, params, is_default=True)
    return configuration_update(state, existing, params)


def default_configuration(state: State) -> dict | None:
    return next(
        (c for c in state.store.all("billing_portal.configuration") if c["is_default"]), None
    )


@route("POST", "/v1/billing_portal/configurations")
def configuration_create_endpoint(state: State, params: dict) -> dict:
    validate(params, _CONFIGURATION_FIELDS)
    require(params, "features")
    return configuration_create(state, params)


@route("GET", "/v1/billing_portal/configurations/{id}")
def configuration_retrieve(state: State, params: dict, id: str) -> dict:
    validate(params, {})
    return state.store.get(id, "billing_portal.configuration")


@route("POST", "/v1/billing_portal/configurations/{id}")
def configuration_update_endpoint(state: State, params: dict, id: str) -> dict:
    validate(params, {**_CONFIGURATION_FIELDS, "active": None})
    configuration = state.store.get(id, "billing_portal.configuration")
    return configuration_update(state, configuration, params)


@route("GET", "/v1/billing_portal/configurations")
def configuration_list(state: State, params: dict) -> dict:
    validate(params, {**LIST_PARAMS, "active": None, "is_default": None})
    items = state.store.all("billing_portal.configuration")
    for key in ("active", "is_default"):
        if key in params:
            wanted = to_bool(params[key], key)
            items = [c for c in items if c[key] == wanted]
    return state.store.page(
        items, params, "/v1/billing_portal/configurations", params.get("expand")
    )


@route("POST", "/v1/billing_portal/sessions")
def portal_session_create(state: State, params: dict) -> dict:
    validate(
        params,
        {
            "configuration": None,
            "customer": None,
            "flow_data": ANY,
            "locale": None,
            "on_behalf_of": None,
            "return_url": None,
        },
    )
    require(params, "customer")
    store = state.store
    store.get(params["customer"], "customer", "customer")
    configuration: dict | None
    if params.get("configuration"):
        configuration = store.get(
            params["configuration"], "billing_portal.configuration", "configuration"
        )
        if not configuration["active"]:
            raise invalid_parameter(
                "configuration",
                f"The configuration `{configuration['id']}` is not active: activate it, or "
                "pass an active configuration.",
                code="parameter_invalid_string",
            )
    else:
        configuration = default_configuration(state)
        if configuration is None:
            raise StripeError(NO_DEFAULT_CONFIGURATION)
    session_id = store.new_id("bps")
    return store.add(
        {
            "id": session_id,
            "object": "billing_portal.session",
            "configuration": configuration["id"],
            "created": store.now(),
            "customer": params["customer"],
            "flow": None,
            "livemode": False,
            "locale": params.get("locale"),
            "on_behalf_of": None,
            "return_url": params.get("return_url") or configuration["default_return_url"],
            "url": f"{state.base_url}/p/session/{session_id}",
        }
    )


# ----- hosted page actions -----------------------------------------------------------------------


def session_configuration(state: State, session: dict) -> dict:
    return state.store.objects[session["configuration"]]


def portal_subscription(state: State, customer_id: str) -> dict | None:
    """The customer's current (not canceled) subscription, newest first."""
    return next(
        (
            s
            for s in state.store.all("subscription")
            if s["customer"] == customer_id and s["status"] != "canceled"
        ),
        None,
    )


def switchable_products(state: State, configuration: dict) -> list[tuple[dict, dict, dict | None]]:
    """(product, licensed price, metered price or None) for each product the configuration lets
    a customer switch to, with the prices it lists for it (active, recurring ones only)."""
    update = configuration["features"]["subscription_update"]
    if not update["enabled"] or "price" not in update["default_allowed_updates"]:
        return []
    store = state.store
    offers = []
    for entry in update["products"] or []:
        product = store.find(entry["product"], "product")
        if product is None or not product["active"]:
            continue
        found = (store.find(p, "price") for p in entry["prices"])
        prices = [p for p in found if p is not None and p["active"] and p["recurring"]]
        licensed = next((p for p in prices if not is_metered(p)), None)
        metered = next((p for p in prices if is_metered(p)), None)
        if licensed:
            offers.append((product, licensed, metered))
    return offers


def portal_switch(state: State, configuration: dict, sub: dict, product_id: str) -> bool:
    """Move the subscription to another product the configuration offers: its licensed and
    metered prices replace ours, with the configuration's proration_behavior (which decides
    whether the old metered price's usage so far is billed, see billing/subscriptions.py)."""
    offer = next(
        (o for o in switchable_products(state, configuration) if o[0]["id"] == product_id), None
    )
    if offer is None:
        return False
    _, licensed, metered = offer
    proration_behavior = configuration["features"]["subscription_update"]["proration_behavior"]
    before = state.snapshot(sub)
    store = state.store
    for item in subscription_items(state, sub["id"]):
        current = store.objects[item["_price_id"]]
        target = metered if is_metered(current) else licensed
        if target is None:
            item_remove(state, sub, item, proration_behavior)
        elif target["id"] != current["id"]:
            item_change_price(state, sub, item, target["id"], proration_behavior)
    if metered and not any(
        is_metered(store.objects[i["_price_id"]]) for i in subscription_items(state, sub["id"])
    ):
        subscription_add_item(state, sub, metered["id"], None)
    state.emit("customer.subscription.updated", sub, before)
    if proration_behavior == "always_invoice":
        invoice_now_for_update(state, sub)
    return True


def portal_cancel_at_period_end(state: State, sub: dict, cancel: bool = True) -> None:
    before = state.snapshot(sub)
    end = subscription_items(state, sub["id"])[0]["current_period_end"]
    sub.update(
        cancel_at_period_end=cancel,
        cancel_at=end if cancel else None,
        canceled_at=state.store.now() if cancel else None,
    )
    state.emit("customer.subscription.updated", sub, before)


def portal_cancel_now(state: State, configuration: dict, sub: dict) -> None:
    """`subscription_cancel.mode: immediately`: canceled at once, the usage so far invoiced,
    the unused time credited when the configuration's proration_behavior is create_prorations."""
    cancel = configuration["features"]["subscription_cancel"]
    subscription_cancel(
        state, sub, invoice_now=True, prorate=cancel["proration_behavior"] == "create_prorations"
    )


def portal_update_card(state: State, customer_id: str) -> None:
    """A new working card: declines stop, and it becomes the default payment method."""
    store = state.store
    store.declining_customers.discard(customer_id)
    card = card_for_customer(state, customer_id)
    customer = store.objects[customer_id]
    before = state.snapshot(customer)
    customer["invoice_settings"]["default_payment_method"] = card["id"]
    state.emit("customer.updated", customer, before)
