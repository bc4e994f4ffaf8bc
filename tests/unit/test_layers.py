"""The tree shows the design: every module imports only from its own floor or below.

Floors, bottom up (README "Layout"):

0. errors, tokens, logs, settings, schemas, providers.kinds, gevent_sendall, http_headers,
   gunicorn_http: plain values (and Gunicorn's own output)
1. streaming, metrics, db, auth: shared building blocks
2. providers, pricing, surfaces: talking to upstreams, in typed objects; schemas.admin (the
   admin API's schemas dump stored rows, so they sit above the database models)
3. routing, usage, cache, sync, admission, admin: the services of one concern each
4. chat: the request pipelines that compose them
5. gateway: the wiring
6. api, console, cli, server: HTTP (the API, the operator console), the command line, the
   Gunicorn worker
7. app (create_app)

Function-level and ``TYPE_CHECKING`` imports count too: an import that reaches up a floor,
wherever it is written, is a circle in the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"

FLOORS: dict[str, int] = {
    "app.errors": 0, "app.tokens": 0, "app.logs": 0, "app.settings": 0, "app.schemas": 0,
    "app.providers.kinds": 0, "app.gevent_sendall": 0, "app.http_headers": 0,
    "app.gunicorn_http": 0,
    "app.streaming": 1, "app.metrics": 1, "app.db": 1, "app.auth": 1,
    "app.providers": 2, "app.pricing": 2, "app.surfaces": 2, "app.schemas.admin": 2,
    "app.routing": 3, "app.usage": 3, "app.cache": 3, "app.sync": 3, "app.admission": 3,
    "app.admin": 3,
    "app.chat": 4,
    "app.gateway": 5,
    "app.api": 6, "app.console": 6, "app.cli": 6, "app.server": 6,
    "app": 7,
}


def floor(module: str) -> int:
    """The floor of ``module``: that of its longest listed prefix."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in FLOORS:
            return FLOORS[name]
    raise AssertionError(f"{module} is on no floor: add it to FLOORS (and the README)")


def module_name(path: Path) -> str:
    rel = path.relative_to(APP.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of an ``app`` module in the file."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path) if path.name == "__init__.py" else \
        module_name(path).rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" for a in node.names]
            for name in [target, *names]:
                if name == "app" or name.startswith("app."):
                    out.append((node.lineno, name))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names
                    if a.name == "app" or a.name.startswith("app.")]
    return out


def known(name: str) -> str:
    """The module an imported dotted name refers to (``app.x.y`` may be a name in ``app.x``)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = APP.parent.joinpath(*parts[:end])
        if candidate.with_suffix(".py").exists() or (candidate / "__init__.py").exists():
            return ".".join(parts[:end])
    return name


MODULES = sorted(APP.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_no_module_imports_one_above_it(path: Path) -> None:
    if "migrations" in path.parts:
        return  # Alembic's scripts: run by Alembic, imported by nothing
    here = module_name(path)
    mine = floor(here)
    upward = [f"line {line}: {known(target)} (floor {floor(known(target))})"
              for line, target in imports(path)
              if known(target) != here and floor(known(target)) > mine]
    assert not upward, f"{here} (floor {mine}) imports from above: {upward}"


def test_every_module_is_on_a_floor() -> None:
    for path in MODULES:
        if "migrations" not in path.parts:
            floor(module_name(path))
