"""The two backends are siblings: nothing the cloud backend (nodes/scenario) imports, directly or
through shared modules, reaches the local backend (nodes/local), and the other way round. The graph
is read from the source (every import statement, in functions too), not from a running process."""

from __future__ import annotations

import ast
from pathlib import Path

NODES = Path(__file__).resolve().parent.parent / "nodes"


def _module_name(path: Path) -> str:
    parts = path.relative_to(NODES.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in NODES.rglob("*.py")}


def _imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The pack's modules one module imports (``from . import x`` names a module when one exists),
    plus its parent packages, which Python runs first."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name.removeprefix("scenario_detect.") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = (node.module or "").removeprefix("scenario_detect.")
            targets = [stem, *(f"{stem}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(t for t in targets if t in known)
    parents = name.split(".")
    found.update(".".join(parents[:i]) for i in range(1, len(parents)) if ".".join(parents[:i]) in known)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imported(name, path, set(modules)) for name, path in modules.items()}


def path_between(graph: dict[str, set[str]], start: str, targets: set[str]) -> list[str] | None:
    """The import chain from ``start`` to the first module of ``targets`` it reaches, or None."""
    came_from: dict[str, str | None] = {start: None}
    queue = [start]
    while queue:
        here = queue.pop(0)
        if here in targets:
            chain = [here]
            while came_from[chain[-1]] is not None:
                chain.append(came_from[chain[-1]])  # type: ignore[arg-type]
            return chain[::-1]
        for nxt in sorted(graph[here]):
            if nxt not in came_from:
                came_from[nxt] = here
                queue.append(nxt)
    return None


def _backend(graph: dict[str, set[str]], name: str) -> set[str]:
    return {m for m in graph if m == f"nodes.{name}" or m.startswith(f"nodes.{name}.")}


def test_the_graph_sees_imports_in_functions_and_through_shared_modules() -> None:
    graph = import_graph()
    assert "nodes.local" in graph["nodes.run"]  # module level
    assert "nodes.scenario.entry" in graph["nodes.detect"]  # inside a method
    assert "nodes.scenario.backend" in graph["nodes.scenario.entry"]  # `from .backend import` in a function
    assert "nodes.scenario.network_loop" in graph["nodes.scenario.jobs"]  # `from . import network_loop`
    assert path_between(graph, "nodes.run", _backend(graph, "local")) == ["nodes.run", "nodes.local"]


def test_neither_backend_imports_the_other() -> None:
    graph = import_graph()
    local, cloud = _backend(graph, "local"), _backend(graph, "scenario")
    assert local and cloud
    for start, other in [(m, local) for m in sorted(cloud)] + [(m, cloud) for m in sorted(local)]:
        chain = path_between(graph, start, other)
        assert chain is None, "backends must stay siblings: " + " -> ".join(chain)


def test_the_shared_layer_imports_no_backend() -> None:
    """check_params and DetectError live below both backends (params.py, errors.py)."""
    graph = import_graph()
    both = _backend(graph, "local") | _backend(graph, "scenario")
    for shared in ("nodes.params", "nodes.errors", "nodes.modalities", "nodes.host"):
        assert path_between(graph, shared, both) is None, shared
