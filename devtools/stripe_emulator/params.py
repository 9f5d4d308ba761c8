"""Declared request parameters: unknown ones are refused and values coerced as Stripe does.

A schema is a dict of accepted names. A value of `None` is a scalar, a dict is a nested object with
its own names, a one-element list is an array of that schema, and `ANY` accepts free-form content
(metadata, meter event payloads).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from .errors import StripeError, invalid_parameter, missing_parameter, unknown_parameter

ANY = object()

# Sent by stripe-python on any request; never part of a resource.
COMMON = {"expand": ANY}


def _name(prefix: str, key: str) -> str:
    return f"{prefix}[{key}]" if prefix else key


def validate(params: dict, schema: dict, prefix: str = "") -> None:
    """Raise `parameter_unknown` for the first name the schema does not declare."""
    if not prefix:
        schema = {**COMMON, **schema}
    for key, value in params.items():
        if key not in schema:
            raise unknown_parameter(_name(prefix, key))
        _validate_value(value, schema[key], _name(prefix, key))


def _validate_value(value, spec, name: str) -> None:
    if spec is ANY or spec is None:
        if spec is None and isinstance(value, (dict, list)):
            raise invalid_parameter(name, f"Invalid string: {name} must be a scalar")
        return
    if isinstance(spec, list):
        if value == "":
            return
        if not isinstance(value, list):
            raise invalid_parameter(name, f"Invalid array: {name}", code="parameter_invalid_array")
        for index, item in enumerate(value):
            _validate_value(item, spec[0], f"{name}[{index}]")
        return
    if value == "":
        return  # an empty string unsets an optional hash, as in Stripe
    if not isinstance(value, dict):
        raise invalid_parameter(name, f"Invalid object: {name}", code="parameter_invalid_object")
    validate(value, spec, name)


def lookup(params: dict, dotted: str):
    node = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def form_name(dotted: str) -> str:
    head, *rest = dotted.split(".")
    return head + "".join(f"[{p}]" for p in rest)


def require(params: dict, *dotted_names: str) -> None:
    for dotted in dotted_names:
        value = lookup(params, dotted)
        if value is None or value == "":
            raise missing_parameter(form_name(dotted))


def to_int(value, name: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise invalid_parameter(
            name, f"Invalid integer: {value}", code="parameter_invalid_integer"
        ) from None


def to_bool(value, name: str) -> bool:
    text = str(value).lower()
    if text in ("true", "false"):
        return text == "true"
    raise invalid_parameter(name, f"Invalid boolean: {value}")


def to_decimal(value, name: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise invalid_parameter(name, f"Invalid decimal: {value}") from None
    if not number.is_finite():
        raise invalid_parameter(name, f"Invalid decimal: {value}")
    return number


def choice(value, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise StripeError(
            f"Invalid {name}: must be one of {', '.join(choices)}", param=name, replayable=False
        )
    return value


def merge_metadata(current: dict, update) -> dict:
    """Stripe's metadata update: keys merge, an empty value deletes a key, `metadata=""` clears."""
    if update is None:
        return current
    if update == "":
        return {}
    merged = dict(current)
    for key, value in update.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = str(value)
    return merged
