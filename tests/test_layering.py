"""The package's import graph has no circles and its layers only import downwards.

Every `import` counts, including those inside functions (a lazy import is still a
dependency). The layers are the packages of `srfer/`, bottom up as `LAYERS` lists them."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "srfer"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """module → the package's modules it imports (`from a import b` → a.b when b is a module)."""
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    top = root.name
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files else node.module
                           for a in node.names]  # fmt: skip
            else:
                continue
            graph[name] |= {t for t in targets if t.split(".")[0] == top and t in files and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path [a, b, …, a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_checker_finds_a_circle(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from pkg import c\n")  # lazy imports count too
    (pkg / "c.py").write_text("import pkg.a\n")
    graph = import_graph(pkg)
    assert graph["pkg.a"] == {"pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.c"}
    assert find_cycle(graph) == ["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]
    (pkg / "c.py").write_text("")
    assert find_cycle(import_graph(pkg)) is None


@functools.cache
def srfer_graph() -> dict[str, set[str]]:
    return import_graph(PACKAGE)


def test_srfer_has_no_import_circle() -> None:
    cycle = find_cycle(srfer_graph())
    assert cycle is None, "import circle: " + " → ".join(cycle or [])


# The layers, bottom up: a package imports only from its own layer and those below it.
LAYERS = ("core", "models", "data", "accel", "faces", "infer", "eval", "train", "convert", "serve", "cli")
# Modules that stand on nothing of srfer's: the CLI imports them before torch.
LEAVES = ("srfer.core.process", "srfer.core.console", "srfer.core.errors")


def layer_of(module: str) -> int | None:
    """The index of `module`'s layer in LAYERS (None: the package root, `__main__`)."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_module_lives_in_a_layer() -> None:
    graph = srfer_graph()
    loose = sorted(m for m in graph if layer_of(m) is None and m not in ("srfer", "srfer.__main__"))
    assert not loose, f"modules outside the layer packages: {loose}"


@pytest.mark.parametrize("layer", LAYERS)
def test_layers_import_only_downwards(layer: str) -> None:
    graph = srfer_graph()
    here = LAYERS.index(layer)
    bad = sorted(
        f"{module} → {target}"
        for module, targets in graph.items()
        if layer_of(module) == here
        for target in targets
        if layer_of(target) is None or layer_of(target) > here  # type: ignore[operator]
    )
    assert not bad, f"{layer} imports upwards: {bad}"


@pytest.mark.parametrize("leaf", LEAVES)
def test_leaves_stand_on_nothing(leaf: str) -> None:
    assert not srfer_graph()[leaf], f"{leaf} imports {sorted(srfer_graph()[leaf])}"


def test_only_the_cli_and_the_entry_point_import_the_cli() -> None:
    graph = srfer_graph()
    cli = LAYERS.index("cli")
    bad = [m for m, targets in graph.items() if m not in ("srfer.__main__",) and layer_of(m) != cli
           and any(layer_of(t) == cli for t in targets)]  # fmt: skip
    assert not bad
