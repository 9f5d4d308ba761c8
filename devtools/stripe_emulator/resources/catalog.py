"""Products and prices (licensed, metered with `recurring.meter`, graduated tiers)."""

from __future__ import annotations

from ..errors import StripeError, invalid_parameter
from ..params import ANY, choice, merge_metadata, require, to_bool, to_decimal, to_int, validate
from ..router import route
from ..state import State
from .customers import LIST_PARAMS

_PRODUCT_FIELDS = {
    "active": None,
    "description": None,
    "id": None,
    "images": [None],
    "marketing_features": [{"name": None}],
    "metadata": ANY,
    "name": None,
    "statement_descriptor": None,
    "tax_code": None,
    "unit_label": None,
    "url": None,
}


def _text(value):
    return None if value in (None, "") else value


@route("POST", "/v1/products")
def product_create(state: State, params: dict) -> dict:
    validate(params, _PRODUCT_FIELDS)
    require(params, "name")
    store = state.store
    product_id = params.get("id") or store.new_id("prod", 14)
    if product_id in store.objects:
        raise StripeError(
            f"Product already exists: {product_id}", code="resource_already_exists", param="id"
        )
    now = store.now()
    product = store.add(
        {
            "id": product_id,
            "object": "product",
            "active": to_bool(params.get("active", "true"), "active"),
            "attributes": [],
            "created": now,
            "default_price": None,
            "description": _text(params.get("description")),
            "images": list(params.get("images") or []),
            "livemode": False,
            "marketing_features": list(params.get("marketing_features") or []),
            "metadata": merge_metadata({}, params.get("metadata")),
            "name": params["name"],
            "package_dimensions": None,
            "shippable": None,
            "statement_descriptor": _text(params.get("statement_descriptor")),
            "tax_code": _text(params.get("tax_code")),
            "type": "service",
            "unit_label": _text(params.get("unit_label")),
            "updated": now,
            "url": _text(params.get("url")),
        }
    )
    state.emit("product.created", product)
    return product


@route("GET", "/v1/products/{id}")
def product_retrieve(state: State, params: dict, id: str) -> dict:
    validate(params, {})
    return state.store.get(id, "product")


@route("POST", "/v1/products/{id}")
def product_update(state: State, params: dict, id: str) -> dict:
    fields = {k: v for k, v in _PRODUCT_FIELDS.items() if k != "id"}
    validate(params, {**fields, "default_price": None})
    store = state.store
    product = store.get(id, "product")
    before = state.snapshot(product)
    for key in ("description", "statement_descriptor", "tax_code", "unit_label", "url"):
        if key in params:
            product[key] = _text(params[key])
    if "name" in params:
        product["name"] = params["name"]
    if "active" in params:
        product["active"] = to_bool(params["active"], "active")
    if "images" in params:
        product["images"] = list(params["images"] or [])
    if "marketing_features" in params:
        product["marketing_features"] = list(params["marketing_features"] or [])
    if "default_price" in params:
        if params["default_price"]:
            store.get(params["default_price"], "price", "default_price")
        product["default_price"] = _text(params["default_price"])
    product["metadata"] = merge_metadata(product["metadata"], params.get("metadata"))
    product["updated"] = store.now()
    state.emit("product.updated", product, before)
    return product


@route("GET", "/v1/products")
def product_list(state: State, params: dict) -> dict:
    # Unlike prices, products are all listed unless `active` is given ("Returns a list of your
    # products", List all products, https://docs.stripe.com/api/products/list).
    validate(params, {**LIST_PARAMS, "active": None, "ids": [None], "shippable": None, "url": None})
    items = state.store.all("product")
    if "active" in params:
        active = to_bool(params["active"], "active")
        items = [p for p in items if p["active"] == active]
    if params.get("ids"):
        items = [p for p in items if p["id"] in params["ids"]]
    return state.store.page(items, params, "/v1/products", params.get("expand"))


@route("GET", "/v1/products/{id}/features")
def product_features(state: State, params: dict, id: str) -> dict:
    # dj-stripe lists a product's entitlement features after every product sync; none here.
    validate(params, LIST_PARAMS)
    state.store.get(id, "product")
    return state.store.page([], params, f"/v1/products/{id}/features")


# ----- prices ------------------------------------------------------------------------------------

_TIER = {
    "flat_amount": None,
    "flat_amount_decimal": None,
    "unit_amount": None,
    "unit_amount_decimal": None,
    "up_to": None,
}
_PRICE_FIELDS = {
    "active": None,
    "billing_scheme": None,
    "currency": None,
    "lookup_key": None,
    "metadata": ANY,
    "nickname": None,
    "product": None,
    "product_data": {"name": None, "active": None, "metadata": ANY, "unit_label": None},
    "recurring": {
        "interval": None,
        "interval_count": None,
        "meter": None,
        "usage_type": None,
        "trial_period_days": None,
    },
    "tax_behavior": None,
    "tiers": [_TIER],
    "tiers_mode": None,
    "transfer_lookup_key": None,
    "unit_amount": None,
    "unit_amount_decimal": None,
}


def _amounts(source: dict, name: str, required: bool) -> tuple[int | None, str | None]:
    """`unit_amount` / `unit_amount_decimal` as Stripe reports them: an integer amount only when
    the decimal has no fractional cents."""
    if "unit_amount" in source and "unit_amount_decimal" in source:
        raise invalid_parameter(
            f"{name}unit_amount_decimal",
            "You may only specify one of these parameters: unit_amount, unit_amount_decimal.",
        )
    if "unit_amount" in source:
        amount = to_int(source["unit_amount"], f"{name}unit_amount")
        return amount, str(amount)
    if "unit_amount_decimal" in source:
        exact = to_decimal(source["unit_amount_decimal"], f"{name}unit_amount_decimal")
        text = format(exact.normalize(), "f")
        return (int(exact) if exact == exact.to_integral_value() else None), text
    if required:
        raise StripeError(
            "You must specify either `unit_amount`, `unit_amount_decimal`, or `custom_unit_amount`"
            " when `billing_scheme=per_unit`.",
            code="parameter_missing",
            param="unit_amount",
            replayable=False,
        )
    return None, None


def _tiers(params: dict) -> list[dict]:
    raw = params.get("tiers")
    if not raw:
        raise StripeError(
            "Tiers must be specified when billing scheme is tiered.",
            code="parameter_missing",
            param="tiers",
            replayable=False,
        )
    tiers, previous = [], 0
    for index, tier in enumerate(raw):
        name = f"tiers[{index}]"
        up_to = tier.get("up_to")
        if up_to is None:
            raise StripeError(
                "Missing required param: up_to.",
                code="parameter_missing",
                param=f"{name}[up_to]",
                replayable=False,
            )
        bound = None if up_to == "inf" else to_int(up_to, f"{name}[up_to]")
        last = index == len(raw) - 1
        if (bound is None) != last or (bound is not None and bound <= previous):
            raise invalid_parameter(
                f"{name}[up_to]",
                "Tiers must be in ascending order of `up_to`, and only the last tier may be `inf`.",
            )
        unit, unit_decimal = _amounts(
            {k: v for k, v in tier.items() if k.startswith("unit_amount")}, f"{name}[", False
        )
        flat_src = {}
        if "flat_amount" in tier:
            flat_src["unit_amount"] = tier["flat_amount"]
        if "flat_amount_decimal" in tier:
            flat_src["unit_amount_decimal"] = tier["flat_amount_decimal"]
        flat, flat_decimal = _amounts(flat_src, f"{name}[flat_", False)
        tiers.append(
            {
                "flat_amount": flat,
                "flat_amount_decimal": flat_decimal,
                "unit_amount": unit,
                "unit_amount_decimal": unit_decimal,
                "up_to": bound,
            }
        )
        previous = bound or previous
    return tiers


def _claim_lookup_key(state: State, key: str | None, transfer: bool) -> None:
    if not key:
        return
    for price in state.store.all("price"):
        if price["lookup_key"] == key:
            if not transfer:
                raise StripeError(
                    f"A price (`{price['id']}`) already uses that lookup key.",
                    param="lookup_key",
                )
            before = state.snapshot(price)
            price["lookup_key"] = None
            state.emit("price.updated", price, before)


@route("POST", "/v1/prices")
def price_create(state: State, params: dict) -> dict:
    validate(params, _PRICE_FIELDS)
    require(params, "currency")
    store = state.store
    if params.get("product"):
        product_id = store.get(params["product"], "product", "product")["id"]
    elif params.get("product_data"):
        require(params, "product_data.name")
        product_id = product_create(state, dict(params["product_data"]))["id"]
    else:
        raise StripeError(
            "You must specify either `product` or `product_data` when creating a price.",
            code="parameter_missing",
            param="product",
            replayable=False,
        )
    scheme = choice(
        params.get("billing_scheme", "per_unit"), "billing_scheme", ("per_unit", "tiered")
    )
    recurring = None
    if params.get("recurring"):
        raw = params["recurring"]
        require(params, "recurring.interval")
        usage_type = choice(
            raw.get("usage_type", "licensed"), "recurring[usage_type]", ("licensed", "metered")
        )
        meter = raw.get("meter") or None
        if usage_type == "metered" and not meter:
            raise StripeError(
                "Metered prices must be attached to a meter: pass `recurring[meter]`.",
                code="parameter_missing",
                param="recurring[meter]",
                replayable=False,
            )
        if meter:
            store.get(meter, "billing.meter", "recurring[meter]")
        recurring = {
            "interval": choice(
                raw["interval"], "recurring[interval]", ("day", "week", "month", "year")
            ),
            "interval_count": to_int(raw.get("interval_count", 1), "recurring[interval_count]"),
            "meter": meter,
            "trial_period_days": None,
            "usage_type": usage_type,
        }
    tiers, tiers_mode = None, None
    if scheme == "tiered":
        require(params, "tiers_mode")
        tiers_mode = choice(params["tiers_mode"], "tiers_mode", ("graduated", "volume"))
        tiers = _tiers(params)
        unit_amount, unit_decimal = None, None
    else:
        for name in ("tiers", "tiers_mode"):
            if name in params:
                raise invalid_parameter(
                    name, f"`{name}` can only be used with `billing_scheme=tiered`."
                )
        unit_amount, unit_decimal = _amounts(params, "", True)
    transfer = to_bool(params.get("transfer_lookup_key", "false"), "transfer_lookup_key")
    _claim_lookup_key(state, params.get("lookup_key"), transfer)
    price = store.add(
        {
            "id": store.new_id("price"),
            "object": "price",
            "active": to_bool(params.get("active", "true"), "active"),
            "billing_scheme": scheme,
            "created": store.now(),
            "currency": params["currency"].lower(),
            "custom_unit_amount": None,
            "livemode": False,
            "lookup_key": params.get("lookup_key") or None,
            "metadata": merge_metadata({}, params.get("metadata")),
            "nickname": params.get("nickname") or None,
            "product": product_id,
            "recurring": recurring,
            "tax_behavior": params.get("tax_behavior", "unspecified"),
            "tiers_mode": tiers_mode,
            "transform_quantity": None,
            "type": "recurring" if recurring else "one_time",
            "unit_amount": unit_amount,
            "unit_amount_decimal": unit_decimal,
            # `tiers` is includable: shown only with expand[]=tiers, as in Stripe.
            "_tiers": tiers,
            "_currency_options": {},
        }
    )
    state.emit("price.created", price)
    return price


@route("GET", "/v1/prices/{id}")
def price_retrieve(state: State, params: dict, id: str) -> dict:
    validate(params, {})
    return state.store.get(id, "price")


@route("POST", "/v1/prices/{id}")
def price_update(state: State, params: dict, id: str) -> dict:
    # Amounts, tiers and recurrence are immutable in Stripe: create a new price instead.
    validate(
        params,
        {
            "active": None,
            "lookup_key": None,
            "metadata": ANY,
            "nickname": None,
            "transfer_lookup_key": None,
            "tax_behavior": None,
        },
    )
    price = state.store.get(id, "price")
    before = state.snapshot(price)
    if "active" in params:
        price["active"] = to_bool(params["active"], "active")
    if "nickname" in params:
        price["nickname"] = params["nickname"] or None
    if "lookup_key" in params and params["lookup_key"] != price["lookup_key"]:
        transfer = to_bool(params.get("transfer_lookup_key", "false"), "transfer_lookup_key")
        _claim_lookup_key(state, params["lookup_key"], transfer)
        price["lookup_key"] = params["lookup_key"] or None
    if "tax_behavior" in params:
        price["tax_behavior"] = params["tax_behavior"]
    price["metadata"] = merge_metadata(price["metadata"], params.get("metadata"))
    state.emit("price.updated", price, before)
    return price


@route("GET", "/v1/prices")
def price_list(state: State, params: dict) -> dict:
    validate(
        params,
        {
            **LIST_PARAMS,
            "active": None,
            "currency": None,
            "lookup_keys": [None],
            "product": None,
            "recurring": {"interval": None, "meter": None, "usage_type": None},
            "type": None,
        },
    )
    # "Returns a list of your active prices ... For the list of inactive prices, set `active` to
    # false." (List all prices, https://docs.stripe.com/api/prices/list). Lookup keys do not
    # widen it: an archived price under a lookup key is listed only with active=false.
    active = to_bool(params["active"], "active") if "active" in params else True
    items = [p for p in state.store.all("price") if p["active"] == active]
    for key in ("currency", "product", "type"):
        if params.get(key):
            items = [p for p in items if p[key] == params[key]]
    if params.get("lookup_keys"):
        items = [p for p in items if p["lookup_key"] in params["lookup_keys"]]
    for key, wanted in (params.get("recurring") or {}).items():
        items = [p for p in items if (p["recurring"] or {}).get(key) == wanted]
    return state.store.page(items, params, "/v1/prices", params.get("expand"))
