"""The import rules of docs/architecture.md, checked on the source: the picture stays true.

Every module under ``service/`` belongs to one layer, and each layer lists what it
may import: other parts of ``service`` and third-party packages (the standard
library and the generated schema are always allowed). Relative imports are
resolved to absolute names first, so ``from ..providers import x`` counts.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import ROOT

SERVICE = ROOT / "service"
STDLIB = set(sys.stdlib_module_names) | {"__future__"}
ALWAYS = ("chatgate",)  # the generated schema, which every layer may use


@dataclass(frozen=True)
class Layer:
    name: str
    modules: tuple[str, ...]  # module name prefixes that belong to it
    internal: tuple[str, ...]  # parts of service/ it may import
    external: tuple[str, ...] = ()  # third-party top-level packages it may import
    forbidden: tuple[str, ...] = ()  # parts of what ``internal`` admits that it still may not import


CORE = ("service.core",)
# The use case: what the edges call. A provider is called by it and must never call back into it.
USE_CASE = ("service.core.chat", "service.core.pipeline", "service.core.fanout")
LAYERS = (
    Layer("core", CORE, CORE),
    Layer("codecs", ("service.codecs",), (*CORE, "service.codecs"), ("orjson", "google.protobuf"), USE_CASE),
    Layer(
        "upstream transport",
        ("service.transport",),
        (*CORE, "service.transport"),
        ("aiohttp", "httpx", "orjson", "yarl"),
        USE_CASE,
    ),
    Layer(
        "Anthropic provider",
        ("service.providers.anthropic",),
        (*CORE, "service.codecs", "service.transport", "service.providers.anthropic"),
        ("orjson", "google.protobuf"),
        USE_CASE,
    ),
    # Claude on the clouds: Anthropic's wire (the Anthropic provider's package) on other platforms,
    # through each platform's own libraries.
    Layer(
        "Bedrock provider",
        ("service.providers.bedrock",),
        (*CORE, "service.transport", "service.providers.anthropic", "service.providers.bedrock"),
        ("orjson", "botocore"),
        USE_CASE,
    ),
    Layer(
        "Vertex AI provider",
        ("service.providers.vertex",),
        (*CORE, "service.transport", "service.providers.anthropic", "service.providers.vertex"),
        ("orjson", "google.auth", "google.oauth2", "urllib3"),
        USE_CASE,
    ),
    Layer("scripted provider", ("service.providers.scripted",), CORE, forbidden=USE_CASE),
    Layer("providers package", ("service.providers",), ()),
    Layer(
        "HTTP edge",
        ("service.http_api",),
        (*CORE, "service.codecs", "service.observability", "service.proxy", "service.http_api"),
        ("starlette", "orjson"),
    ),
    Layer(
        "gRPC edge",
        ("service.grpc_api",),
        (*CORE, "service.observability", "service.proxy", "service.grpc_api"),
        ("grpc", "grpc_health", "grpc_reflection", "google.protobuf", "google.rpc"),
    ),
    Layer(
        "observability",
        ("service.observability",),
        (*CORE, "service.observability"),
        ("prometheus_client", "orjson"),
    ),
    Layer("proxy signals", ("service.proxy",), CORE),
    # The simulator checks the clouds' credentials with the libraries the clouds' SDKs use.
    Layer(
        "simulator",
        ("service.simulator",),
        ("service.simulator",),
        ("orjson", "botocore", "google.auth", "cryptography"),
    ),
    Layer("store", ("service.store",), (*CORE, "service.store"), ("orjson", "asyncpg", "redis")),
    # The composition root wires everything together: it may import any part of service.
    Layer(
        "composition root",
        ("service.app", "service.__main__"),
        ("service",),
        ("uvicorn", "prometheus_client", "uvloop", "orjson"),
    ),
    Layer("service package", ("service",), ()),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolved_imports(source: str, module: str, is_package: bool) -> set[str]:
    """Absolute names of everything ``source`` imports, relative imports resolved."""
    names: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            # `from pkg import name` may import a submodule: count both.
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names if alias.name != "*"}
    return names


def layer_of(module: str) -> Layer:
    """The most specific layer whose prefix matches."""
    matches = [
        (len(prefix), layer)
        for layer in LAYERS
        for prefix in layer.modules
        if module == prefix or module.startswith(prefix + ".")
    ]
    if not matches:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")
    return max(matches, key=lambda m: m[0])[1]


def allowed(layer: Layer, name: str) -> bool:
    top = name.split(".", maxsplit=1)[0]
    if top in STDLIB or top in ALWAYS:
        return True
    if top == "service":
        if any(name == part or name.startswith(part + ".") for part in layer.forbidden):
            return False
        return any(name == part or name.startswith(part + ".") for part in layer.internal) or name == "service"
    return any(name == ext or name.startswith(ext + ".") for ext in layer.external)


def violations(root: Path = SERVICE) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path)
        layer = layer_of(module)
        for name in sorted(resolved_imports(path.read_text(), module, path.name == "__init__.py")):
            if not allowed(layer, name):
                found.append(f"{module} ({layer.name}) imports {name}")
    return found


def test_every_module_keeps_its_layers_rules() -> None:
    assert violations() == []


def test_every_module_belongs_to_a_layer() -> None:
    modules = [module_name(p) for p in SERVICE.rglob("*.py")]
    assert {"service.app.gateway", "service.app.cli", "service.observability", "service.simulator.app"} <= set(modules)
    for module in modules:
        layer_of(module)


@pytest.mark.parametrize(
    ("module", "line"),
    [
        ("service/http_api/injected.py", "from service.providers.anthropic import AnthropicProvider"),
        ("service/http_api/injected.py", "from ..providers import anthropic"),
        ("service/grpc_api/injected.py", "from ..http_api import app"),
        ("service/core/injected.py", "from service.http_api import create_app"),
        ("service/core/injected.py", "from ..grpc_api import servicer"),
        ("service/core/injected.py", "import grpc"),
        ("service/core/injected.py", "from ..providers.anthropic.catalog import ClaudeTraits"),
        ("service/providers/anthropic/injected.py", "from ...http_api.asgi import header"),
        ("service/providers/anthropic/injected.py", "import starlette"),
        ("service/providers/anthropic/injected.py", "from ..scripted import ScriptedProvider"),
        ("service/codecs/injected.py", "from ..transport import http"),
        ("service/observability/metrics.py", "from ..app.gateway import serve"),
        ("service/providers/anthropic/injected.py", "from service.core.chat import ChatService"),
        ("service/providers/anthropic/injected.py", "from ...core.pipeline import Pipeline"),
        ("service/transport/injected.py", "from ..core.fanout import sum_usage"),
        ("service/http_api/injected.py", "from ..app.config import Settings"),
        ("service/simulator/injected.py", "from ..core import ChatService"),
    ],
)
def test_a_forbidden_import_is_caught(tmp_path: Path, module: str, line: str) -> None:
    """Mutation check: the rules above really fail when an import crosses a layer."""
    path = ROOT / module
    source = f"{path.read_text()}\n{line}\n" if path.exists() else f"{line}\n"
    name = module_name(path)
    layer = layer_of(name)
    bad = [n for n in resolved_imports(source, name, path.name == "__init__.py") if not allowed(layer, n)]
    assert bad, f"{line!r} in {module} was not caught"


def import_graph(root: Path = SERVICE) -> dict[str, set[str]]:
    """Which module of ours imports which (imports inside functions too), by module name.

    A package importing its own submodules, and a module importing the package it sits in, are
    the package's re-exports, not a dependency between parts: they are left out."""
    paths = {module_name(path): path for path in root.rglob("*.py")}
    packages = {name for name, path in paths.items() if path.name == "__init__.py"}
    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        targets = set()
        for imported in resolved_imports(path.read_text(), module, module in packages):
            name = imported
            while name and name not in paths:
                name = name.rpartition(".")[0]
            if not name or name == module:
                continue
            if module in packages and name.startswith(module + "."):
                continue
            if name in packages and module.startswith(name + "."):
                continue
            targets.add(name)
        graph[module] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_through_others() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_check_finds_a_circle() -> None:
    """Mutation check: the circle the composition root once had (cli <-> gateway) is found."""
    graph = import_graph()
    graph["service.app.version"] = {"service.app.cli"}
    assert ["service.app.cli", "service.app.version"] in [
        [m for m in group if m in ("service.app.cli", "service.app.version")] for group in cycles(graph)
    ]


def test_every_document_a_comment_cites_exists() -> None:
    """Comments point at the repository's own documents, never at ones it does not contain."""
    import re

    cited = {
        (path, match)
        for folder in (SERVICE, ROOT / "tests", ROOT / "bench", ROOT / "proto")
        for path in folder.rglob("*")
        if path.suffix in (".py", ".proto") and "node_modules" not in path.parts
        for match in re.findall(r"\b(?:docs/)?[\w-]+\.md\b", path.read_text())
    }
    assert cited, "the scan found no citations at all"
    assert sorted(f"{path.relative_to(ROOT)} cites {name}" for path, name in cited if not (ROOT / name).exists()) == []
