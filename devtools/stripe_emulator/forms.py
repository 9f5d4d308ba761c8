"""Decode Stripe's form encoding (`line_items[0][price]=…`, `expand[]=…`) into nested values.

stripe-python writes arrays as `key[0]`, `key[1]`; other clients write `key[]`. Both become lists.
Values stay strings: each endpoint coerces what it declares, as Stripe does.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

_SEGMENT = re.compile(r"\[([^\]]*)\]")


def _split_key(key: str) -> list[str]:
    head, _, rest = key.partition("[")
    if not rest:
        return [head]
    return [head, *_SEGMENT.findall("[" + rest)]


def _listify(value):
    """Turn dicts keyed only by array indexes into lists, depth first."""
    if isinstance(value, dict):
        value = {k: _listify(v) for k, v in value.items()}
        if value and all(k.isdigit() for k in value):
            return [value[k] for k in sorted(value, key=int)]
        return value
    if isinstance(value, list):
        return [_listify(v) for v in value]
    return value


def decode(query: str) -> dict:
    """Parse a form-encoded body or query string into nested dicts and lists."""
    root: dict = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        segments = _split_key(key)
        node = root
        for index, segment in enumerate(segments):
            last = index == len(segments) - 1
            if segment == "":
                # `key[]`: append; the parent was created as a list for it below.
                continue
            nxt = segments[index + 1] if not last else None
            if last:
                _store(node, segment, value)
            elif nxt == "":
                node = node.setdefault(segment, [])
                node.append(value)
                break
            else:
                child = node.get(segment) if isinstance(node, dict) else None
                if not isinstance(child, dict):
                    child = {}
                    node[segment] = child
                node = child
    return _listify(root)


def _store(node: dict, key: str, value: str) -> None:
    existing = node.get(key)
    if isinstance(existing, dict):
        # `metadata=` (empty) after `metadata[a]=b` would be nonsense; the nested form wins.
        return
    node[key] = value
