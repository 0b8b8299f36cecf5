"""The package's layering, read from the source with `ast` so that it cannot slip again.

Layers, low to high: the engine, the speech package and the shared top-level modules
(`heygemd/*.py` but `cli.py` and `__main__.py`); the daemon; the cluster and the web (neither
imports the other); the commands and `cli.py`. A module may import its own layer or a lower one,
and no set of modules may import each other in a circle. Imports inside functions count too: they
run later, but they tie the modules together all the same.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parent.parent / "heygemd"
PACKAGE = PACKAGE_ROOT.name

ENGINE_LEVEL, DAEMON_LEVEL, EDGE_LEVEL, COMMAND_LEVEL = range(4)
SUB_PACKAGE_LEVELS: dict[str, int] = {
    "engine": ENGINE_LEVEL,
    "speech": ENGINE_LEVEL,
    "daemon": DAEMON_LEVEL,
    "cluster": EDGE_LEVEL,
    "web": EDGE_LEVEL,
    "commands": COMMAND_LEVEL,
}
TOP_LEVEL_ENTRY_POINTS = frozenset({"cli", "__main__"})
# Same layer, still no arrows between them: the cluster and the web are two separate rooms.
FORBIDDEN_SIDEWAYS: frozenset[tuple[str, str]] = frozenset({("cluster", "web"), ("web", "cluster")})


@dataclass(frozen=True)
class ModuleFile:
    name: str  # dotted, "heygemd.daemon.runner"; a package is named by its folder
    path: Path
    is_package: bool


@dataclass(frozen=True)
class ImportArrow:
    source: str
    target: str
    line: int

    def describe(self) -> str:
        return f"{self.source} (line {self.line}) imports {self.target}"


def package_modules(root: Path = PACKAGE_ROOT) -> dict[str, ModuleFile]:
    modules: dict[str, ModuleFile] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        name = ".".join(parts)
        modules[name] = ModuleFile(name, path, is_package)
    return modules


def _absolute_base(module: ModuleFile, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = module.name.split(".")
    if not module.is_package:
        parts.pop()
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def import_arrows(module: ModuleFile, known: dict[str, ModuleFile]) -> list[ImportArrow]:
    """Every import of a module of the package, anywhere in `module`'s source (lazy ones too).

    `from a.b import c` points at the module `a.b.c` when there is one, else at `a.b` itself.
    """
    arrows: list[ImportArrow] = []
    for node in ast.walk(ast.parse(module.path.read_text(encoding="utf-8"), filename=str(module.path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute_base(module, node)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        arrows.extend(
            ImportArrow(module.name, target, node.lineno)
            for target in dict.fromkeys(targets)
            if target in known and target != module.name
        )
    return arrows


def room_of(module_name: str) -> str:
    """The sub-package a module lives in ("daemon"), or the module's own name for a top-level one."""
    parts = module_name.split(".")
    return parts[1] if len(parts) > 1 else ""


def level_of(module_name: str) -> int:
    room = room_of(module_name)
    if room in SUB_PACKAGE_LEVELS:
        return SUB_PACKAGE_LEVELS[room]
    return COMMAND_LEVEL if room in TOP_LEVEL_ENTRY_POINTS else ENGINE_LEVEL


def all_arrows() -> list[ImportArrow]:
    modules = package_modules()
    return [arrow for module in modules.values() for arrow in import_arrows(module, modules)]


def upward_or_sideways(arrows: list[ImportArrow]) -> list[ImportArrow]:
    return [
        arrow
        for arrow in arrows
        if level_of(arrow.target) > level_of(arrow.source)
        or (room_of(arrow.source), room_of(arrow.target)) in FORBIDDEN_SIDEWAYS
    ]


def import_circles(arrows: list[ImportArrow]) -> list[list[str]]:
    """The strongly connected groups of two or more modules (Tarjan's algorithm, iteratively)."""
    graph: dict[str, set[str]] = {}
    for arrow in arrows:
        graph.setdefault(arrow.source, set()).add(arrow.target)
        graph.setdefault(arrow.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    circles: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, pending = work[-1]
            if pending:
                child = pending.pop()
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, sorted(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    circles.append(sorted(group))
    return circles


def test_no_module_imports_a_higher_layer_or_across_cluster_and_web() -> None:
    offenders = [arrow.describe() for arrow in upward_or_sideways(all_arrows())]
    assert offenders == [], "imports against the layering:\n" + "\n".join(offenders)


def test_no_import_circle() -> None:
    circles = import_circles(all_arrows())
    assert circles == [], "import circles:\n" + "\n".join(" <-> ".join(group) for group in circles)


# The checker itself, on small made-up packages: it must see what it is meant to see.


def _write_package(root: Path, files: dict[str, str]) -> dict[str, ModuleFile]:
    for relative, source in files.items():
        path = root / PACKAGE / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return package_modules(root / PACKAGE)


def _arrows(modules: dict[str, ModuleFile]) -> list[ImportArrow]:
    return [arrow for module in modules.values() for arrow in import_arrows(module, modules)]


def test_checker_sees_a_lazy_upward_import_and_a_sideways_one(tmp_path: Path) -> None:
    modules = _write_package(
        tmp_path,
        {
            "__init__.py": "",
            "names.py": "",
            "daemon/__init__.py": "",
            "daemon/runner.py": "def later():\n    from heygemd.cluster import store\n",
            "cluster/__init__.py": "",
            "cluster/store.py": "from heygemd.web.views import page\n",
            "web/__init__.py": "",
            "web/views.py": "from ..names import x\n",
            "cli.py": "import heygemd.daemon.runner\n",
        },
    )
    found = {(arrow.source, arrow.target) for arrow in upward_or_sideways(_arrows(modules))}
    assert found == {
        ("heygemd.daemon.runner", "heygemd.cluster.store"),
        ("heygemd.cluster.store", "heygemd.web.views"),
    }


def test_checker_finds_a_circle_through_relative_and_lazy_imports(tmp_path: Path) -> None:
    modules = _write_package(
        tmp_path,
        {
            "__init__.py": "",
            "daemon/__init__.py": "",
            "daemon/a.py": "from . import b\n",
            "daemon/b.py": "def later():\n    from heygemd.daemon.c import thing\n",
            "daemon/c.py": "from .a import other\n",
            "daemon/d.py": "from .a import other\n",
        },
    )
    assert import_circles(_arrows(modules)) == [["heygemd.daemon.a", "heygemd.daemon.b", "heygemd.daemon.c"]]


@pytest.mark.parametrize(
    ("module_name", "level"),
    [
        ("heygemd.engine.engine", ENGINE_LEVEL),
        ("heygemd.speech.voices", ENGINE_LEVEL),
        ("heygemd.codes", ENGINE_LEVEL),
        ("heygemd.daemon.runner", DAEMON_LEVEL),
        ("heygemd.web.app", EDGE_LEVEL),
        ("heygemd.cluster", EDGE_LEVEL),
        ("heygemd.cli", COMMAND_LEVEL),
        ("heygemd.commands.service", COMMAND_LEVEL),
    ],
)
def test_levels(module_name: str, level: int) -> None:
    assert level_of(module_name) == level
