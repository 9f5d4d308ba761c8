"""The apps depend on each other one way, as docs/architecture.md draws it.

Read from the source with ``ast`` (nothing is imported), so a new upward import or a cycle
between apps fails here, whichever module it hides in, even inside a function.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("config", "portal", "billing", "metering", "gateway", "devtools")

# What billing and metering may use of portal: the account and key domain, never its web side.
PORTAL_CORE = (
    "portal.models",
    "portal.services",
    "portal.selectors",
    "portal.audit",
    "portal.signals",
    "portal.periods",
    "portal.principal",
    # Who may do what in an organisation, and which one a page request acts for: every
    # organisation-scoped page asks them, billing's and metering's too.
    "portal.permissions",
    "portal.organisation_access",
    # Reads from async code, the connection cared for as a request's (the gateway, the limiter).
    "portal.database",
)
# What portal may use of billing and metering: their published modules. ``overview``: the
# business-wide figures the admin's index shows (portal/admin_overview.py), read apart from the
# per-account selectors.
PUBLISHED = {
    "billing": ("billing.models", "billing.selectors", "billing.services", "billing.overview"),
    "metering": (
        "metering.models",
        "metering.selectors",
        "metering.services",
        "metering.hotpath",
        "metering.limiter",
        "metering.overview",
    ),
}
# What the gateway (the operator's own endpoints behind a proxy) may use: portal's core and key
# cache, the API's error format, key headers and refusals (its answers read like the built-in
# endpoints'), the metering hot path, and tiers.
GATEWAY_USES = {
    "portal": (
        *PORTAL_CORE,
        "portal.keys",
        "portal.api.problems",
        "portal.api.authentication",
        "portal.api.permissions",
        "portal.api.throttling",
        "portal.api.views",
        "portal.api.schema",
    ),
    "metering": ("metering.hotpath", "metering.limiter", "metering.selectors", "metering.models"),
    "billing": ("billing.models",),
}
# `make run`'s one-process runner starts everything: the Celery app (config) and the emulator.
RUNNERS = ("portal.management.commands.serve",)


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def _modules() -> Iterator[tuple[str, Path]]:
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            yield ".".join(parts), path


def _imports(module: str, path: Path) -> Iterator[tuple[str, int]]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # `from billing import services` names a module, `from billing.models import
                # Tier` a name in one: the graph keeps the longest known module either way.
                yield f"{base}.{alias.name}", node.lineno


def _graph() -> dict[str, set[tuple[str, int]]]:
    known = dict(_modules())
    graph: dict[str, set[tuple[str, int]]] = {}
    for module, path in known.items():
        edges = graph.setdefault(module, set())
        for target, line in _imports(module, path):
            if target.split(".")[0] not in APPS:
                continue
            # The longest known module the name falls in (`from billing.models import Tier`).
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != module:
                edges.add((target, line))
    return graph


def _app(module: str) -> str:
    return module.split(".")[0]


def _broken_rule(source: str, target: str) -> str | None:
    """Why ``source`` may not import ``target``; None when it may."""
    src, dst = _app(source), _app(target)
    if src == dst or source in RUNNERS:
        return None
    if dst == "config":
        return "nothing imports the project package; read settings through django.conf"
    if dst == "devtools" or src == "devtools":
        return "the Stripe emulator and the product know nothing of each other"
    if dst == "gateway" and src != "config":
        return "nothing imports the gateway but config (its URLs) and make run's runner"
    if src == "gateway" and not _within(target, GATEWAY_USES[dst]):
        return f"the gateway reaches {dst} only through {', '.join(GATEWAY_USES[dst])}"
    if src in ("billing", "metering") and dst == "portal" and not _within(target, PORTAL_CORE):
        return "billing and metering use portal's account and key domain, not its web side"
    if src == "metering" and dst == "billing" and not _within(target, ("billing.models",)):
        return "metering sits below billing: it may read tiers (billing.models), nothing else"
    if src == "portal" and dst in PUBLISHED and not _within(target, PUBLISHED[dst]):
        return f"portal reaches {dst} only through {', '.join(PUBLISHED[dst])}"
    return None


def test_no_app_imports_against_the_drawn_direction():
    graph = _graph()
    broken = [
        f"{source}:{line} imports {target}: {reason}"
        for source, edges in sorted(graph.items())
        for target, line in sorted(edges)
        if (reason := _broken_rule(source, target))
    ]
    assert broken == []


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (the graph is a few hundred modules)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def test_no_import_cycle_crosses_an_app_boundary():
    graph = {module: {target for target, _ in edges} for module, edges in _graph().items()}
    crossing = [
        component
        for component in _strongly_connected(graph)
        if len({_app(module) for module in component}) > 1
    ]
    assert crossing == []


@pytest.mark.parametrize(
    ("source", "target", "allowed"),
    [
        ("billing.services.reports", "portal.models", True),
        ("billing.services.reports", "portal.api.views", False),
        ("metering.selectors", "billing.models", True),
        ("metering.selectors", "billing.selectors", False),
        ("portal.api.throttling", "metering.hotpath", True),
        ("portal.views.pages", "metering.limiter.redis", True),
        ("portal.admin_overview", "metering.overview", True),
        ("portal.admin_overview", "metering.charts", False),
        ("portal.services", "billing.tasks", False),
        ("billing.models", "config.settings", False),
        ("gateway.views", "metering.hotpath", True),
        ("gateway.views", "portal.api.problems", True),
        ("gateway.views", "portal.views.pages", False),
        ("gateway.services", "billing.services", False),
        ("portal.api.urls", "gateway.views", False),
        ("metering.hotpath", "gateway.models", False),
    ],
)
def test_the_rules_say_what_the_architecture_page_says(source, target, allowed):
    assert (_broken_rule(source, target) is None) is allowed
