"""Find uses of Python 3.11+ APIs in code that must run on the declared floor (``requires-python >= 3.10``).

ruff's ``target-version = "py310"`` catches 3.11-only *syntax* (``except*``) but not library calls such as
``asyncio.timeout`` or ``loop.create_task(coro, context=...)``, which import fine on 3.10 and only fail when
reached (on 3.10 a cloud run then hangs the queue). This AST scan names them; vermin (PyPI) was tried and
misses ``create_task(context=)`` on a loop object and flags guarded imports, hence a scan of our own.

A use is accepted when it is guarded: inside ``if sys.version_info >= (3, 11):`` / ``if hasattr(...)``
(either branch), or inside a ``try`` that catches ImportError / AttributeError / TypeError.

    python tests/python_floor.py            # exit 1 and one line per use; used by .ci/run's lint step
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SKIPPED_DIRS = {".venv", ".venv-smoke", "build", "artifacts", "__pycache__", ".git", "node_modules"}

# module -> names first added in 3.11 (or 3.12/3.13: above the floor too).
NEWER_NAMES: dict[str, dict[str, str]] = {
    "asyncio": {
        "timeout": "3.11", "timeout_at": "3.11", "Timeout": "3.11", "TaskGroup": "3.11", "Runner": "3.11",
        "Barrier": "3.11", "BrokenBarrierError": "3.11", "eager_task_factory": "3.12", "QueueShutDown": "3.13",
    },
    "typing": {
        "Self": "3.11", "LiteralString": "3.11", "Never": "3.11", "assert_never": "3.11", "reveal_type": "3.11",
        "Required": "3.11", "NotRequired": "3.11", "TypeVarTuple": "3.11", "Unpack": "3.11",
        "dataclass_transform": "3.11", "assert_type": "3.11", "override": "3.12", "TypeAliasType": "3.12",
        "ReadOnly": "3.13", "TypeIs": "3.13",
    },
    "enum": {"StrEnum": "3.11", "verify": "3.11", "ReprEnum": "3.11", "EnumCheck": "3.11", "member": "3.11"},
    "datetime": {"UTC": "3.11"},
    "hashlib": {"file_digest": "3.11"},
    "contextlib": {"chdir": "3.11"},
    "operator": {"call": "3.11"},
    "math": {"exp2": "3.11", "cbrt": "3.11"},
    "itertools": {"batched": "3.12"},
}
NEWER_MODULES = {"tomllib": "3.11", "wsgiref.types": "3.11"}
NEWER_BUILTINS = {"ExceptionGroup": "3.11", "BaseExceptionGroup": "3.11"}
# call keyword -> (method name, version): ``<anything>.create_task(..., context=...)``.
NEWER_KEYWORDS = {("create_task", "context"): "3.11"}
# Uses the issue-14 branch (h14a) replaces with 3.10 fallbacks: reported, but not failing lint until it merges.
# Delete each entry once it no longer shows (tests/test_python_floor.py says which).
GUARD_EXCEPTIONS = {"ImportError", "ModuleNotFoundError", "AttributeError", "TypeError", "NameError"}


@dataclass(frozen=True)
class Finding:
    path: str  # relative to the repository root
    line: int
    api: str
    version: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.api} needs Python {self.version} (the floor is 3.10)"


def _is_guard_test(test: ast.expr) -> bool:
    """``sys.version_info`` comparisons and ``hasattr(...)`` checks choose a fallback on purpose."""
    for node in ast.walk(test):
        if isinstance(node, ast.Attribute) and node.attr == "version_info":
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "hasattr":
            return True
    return False


def _catches_guard(handler: ast.ExceptHandler) -> bool:
    names = [handler.type] if not isinstance(handler.type, ast.Tuple) else list(handler.type.elts)
    return any(isinstance(n, ast.Name) and n.id in GUARD_EXCEPTIONS for n in names if n is not None)


class _Scanner(ast.NodeVisitor):
    def __init__(self, path: str):
        self.path = path
        self.findings: list[Finding] = []
        self.aliases: dict[str, str] = {}  # local name -> module ("aio" -> "asyncio")

    def _add(self, node: ast.AST, api: str, version: str) -> None:
        self.findings.append(Finding(self.path, getattr(node, "lineno", 0), api, version))

    def visit_If(self, node: ast.If) -> None:
        if not _is_guard_test(node.test):
            self.generic_visit(node)

    def visit_Try(self, node: ast.Try) -> None:
        if any(_catches_guard(h) for h in node.handlers):
            return  # a guarded import or call, with its fallback in the handler
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name in NEWER_MODULES:
                self._add(node, f"import {alias.name}", NEWER_MODULES[alias.name])
            self.aliases[alias.asname or alias.name] = alias.name

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if module in NEWER_MODULES:
            self._add(node, f"from {module} import ...", NEWER_MODULES[module])
        for alias in node.names:
            version = NEWER_NAMES.get(module, {}).get(alias.name)
            if version:
                self._add(node, f"{module}.{alias.name}", version)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Name):
            module = self.aliases.get(node.value.id, node.value.id)
            version = NEWER_NAMES.get(module, {}).get(node.attr)
            if version:
                self._add(node, f"{module}.{node.attr}", version)
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in NEWER_BUILTINS and isinstance(node.ctx, ast.Load):
            self._add(node, node.id, NEWER_BUILTINS[node.id])

    def visit_Call(self, node: ast.Call) -> None:
        method = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        for keyword in node.keywords:
            version = NEWER_KEYWORDS.get((method, keyword.arg or ""))
            if version:
                self._add(node, f"{method}({keyword.arg}=...)", version)
        self.generic_visit(node)


def python_files(root: Path = REPO_ROOT) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)  # pruned: never walk a venv
        for name in sorted(files):
            if name.endswith(".py"):
                yield Path(folder) / name


def scan_source(source: str, path: str = "<source>") -> list[Finding]:
    scanner = _Scanner(path)
    scanner.visit(ast.parse(source, filename=path))
    return scanner.findings


def scan(root: Path = REPO_ROOT) -> list[Finding]:
    findings: list[Finding] = []
    for path in python_files(root):
        findings += scan_source(path.read_text(encoding="utf-8"), path.relative_to(root).as_posix())
    return findings


def main() -> int:
    findings = scan()
    for finding in findings:
        print(finding)
    if findings:
        print(f"{len(findings)} use(s) of APIs newer than Python 3.10: guard them or add a fallback", file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    raise SystemExit(main())
