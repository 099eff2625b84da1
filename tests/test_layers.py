"""The import rules of ARCHITECTURE.md, checked on the source: the picture stays true."""

from __future__ import annotations

import ast
import sys

import pytest

from tests.support import ROOT

SERVICE = ROOT / "service"
STDLIB = set(sys.stdlib_module_names)


def imports(package: str) -> dict[str, set[str]]:
    """Top-level names each module of ``service/<package>`` imports (relative imports resolved)."""
    found: dict[str, set[str]] = {}
    for path in (SERVICE / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def offenders(package: str, allowed: object) -> list[str]:
    return [
        f"{module}: {name}" for module, names in imports(package).items() for name in sorted(names) if not allowed(name)
    ]  # type: ignore[operator]


def test_core_imports_only_the_schema_and_the_standard_library() -> None:
    assert offenders("core", lambda n: n.split(".")[0] in STDLIB or n.startswith("chatgate.")) == []


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("http_api", ("service.providers", "service.grpc_api", "grpc", "aiohttp", "httpx")),
        ("grpc_api", ("service.providers", "service.http_api", "starlette", "aiohttp", "httpx")),
        ("providers", ("service.http_api", "service.grpc_api", "starlette", "grpc", "uvicorn")),
    ],
)
def test_edges_and_providers_never_import_each_other(package: str, forbidden: tuple[str, ...]) -> None:
    assert offenders(package, lambda n: not n.startswith(forbidden)) == []
