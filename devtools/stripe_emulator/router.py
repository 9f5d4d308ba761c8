"""URL routing: handlers register with `@route("POST", "/v1/customers/{id}")`."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Response:
    """A non-JSON answer (hosted pages, redirects)."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Route:
    method: str
    pattern: re.Pattern
    handler: Callable
    api: bool  # API routes need a secret key; hosted pages are opened by a browser


ROUTES: list[Route] = []


def route(method: str, template: str, api: bool = True):
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
    pattern = re.compile(f"^{regex}$")

    def register(handler: Callable) -> Callable:
        ROUTES.append(Route(method, pattern, handler, api))
        return handler

    return register


def resolve(method: str, path: str) -> tuple[Route | None, dict, bool]:
    """The matching route, its path arguments, and whether the path exists for another method."""
    path_exists = False
    for candidate in ROUTES:
        match = candidate.pattern.match(path)
        if match:
            if candidate.method == method:
                return candidate, match.groupdict(), True
            path_exists = True
    return None, {}, path_exists
