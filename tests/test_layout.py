"""The house rules of the code's layout (docs/development.md "Layout"): dependencies run
one way, common <- api <- metering <- outcomes <- billing.plans <- billing.credits <-
billing.invoicing <- billing.stripe_sync / billing.analytics / billing.limits /
billing.statements <- alerts,
and no service imports a task (services enqueue by name)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Each domain app and its floor: an app may import only apps on a lower floor.
FLOORS = {
    "common": -2,  # queue, backoff, metrics, replicas: what every app uses
    "api": -1,  # what every API view shares: it knows no domain
    "metering": 0,
    "outcomes": 1,
    "billing.plans": 2,
    "billing.credits": 3,
    "billing.invoicing": 4,
    "billing.stripe_sync": 5,
    "billing.analytics": 5,
    "billing.limits": 5,
    "billing.statements": 5,
    "alerts": 6,
}


def _app_of(module: str) -> str | None:
    for app in sorted(FLOORS, key=len, reverse=True):
        if module == app or module.startswith(f"{app}."):
            return app
    return None


def _modules() -> list[tuple[str, Path]]:
    found = []
    for app in FLOORS:
        for path in (ROOT / app.replace(".", "/")).rglob("*.py"):
            if "migrations" in path.parts:
                continue  # history: they name the models of their time
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found.append((module, path))
    return found


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


def test_every_domain_module_is_found():
    modules = {module for module, _ in _modules()}
    assert {
        "billing.plans.models",
        "billing.invoicing.services.closing",
        "alerts.services",
    } <= modules


def test_no_app_imports_an_app_above_it_or_beside_it():
    upward = sorted(
        f"{module} imports {imported}"
        for module, path in _modules()
        for imported in _imports(path)
        if (target := _app_of(imported)) is not None
        and target != _app_of(module)
        and FLOORS[target] >= FLOORS[_app_of(module)]  # type: ignore[index]
    )
    assert upward == []


def test_no_service_imports_a_task():
    services = [(m, p) for m, p in _modules() if ".services" in m]
    assert services
    offending = sorted(
        f"{module} imports {imported}"
        for module, path in services
        for imported in _imports(path)
        if imported.endswith(".tasks") or ".tasks." in imported
    )
    assert offending == []
