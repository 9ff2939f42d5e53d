"""The package's import graph has no circles and its layers only import downwards.

Every `import` counts, including those inside functions (a lazy import is still a
dependency). Layers, bottom up: base modules (errors, runtime, imageio, checkpoint,
weights, …) → models → data → inference → train / evaluation / the jobs (predict, upscale,
identify, export) → workflow → cli."""

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


ABOVE_INFERENCE = ("srfer.train", "srfer.evaluation", "srfer.predict", "srfer.predict_workers",
                   "srfer.upscale", "srfer.identify", "srfer.export", "srfer.workflow",
                   "srfer.cli")  # fmt: skip
# module prefix → prefixes it must not import
RULES = {
    "srfer.models": ("srfer.data", "srfer.inference", *ABOVE_INFERENCE),
    "srfer.data": ("srfer.inference", *ABOVE_INFERENCE),
    "srfer.inference": ABOVE_INFERENCE,
    "srfer.onnx_runtime": ("srfer.inference", *ABOVE_INFERENCE),  # inference stands on it
    "srfer.annotate": ("srfer.inference", *ABOVE_INFERENCE),
    "srfer.evaluation": ("srfer.train", "srfer.predict", "srfer.workflow", "srfer.cli"),
    "srfer.train": (
        "srfer.evaluation",
        "srfer.predict",
        "srfer.upscale",
        "srfer.identify",
        "srfer.export",
        "srfer.workflow",
        "srfer.cli",
    ),  # fmt: skip
    "srfer.predict": ("srfer.train", "srfer.evaluation", "srfer.workflow", "srfer.cli"),
    "srfer.predict_workers": ("srfer.train", "srfer.evaluation", "srfer.workflow", "srfer.cli"),
    "srfer.runtime": ("srfer.",),
    "srfer.process": ("srfer.",),  # the CLI imports it before torch: it stands on nothing
    "srfer.deploy": ("srfer.",),  # detection and inference stand on it
    "srfer.cascade": ("srfer.data", "srfer.inference", *ABOVE_INFERENCE),  # detection is below inference
    "srfer.detect": ("srfer.data", "srfer.inference", *ABOVE_INFERENCE),
    "srfer.workers": ("srfer.inference", *ABOVE_INFERENCE),  # jobs stand on it, not it on them
}


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix.rstrip(".") + ".")


@pytest.mark.parametrize("layer", sorted(RULES))
def test_layers_import_only_downwards(layer: str) -> None:
    graph = srfer_graph()
    allowed_in_runtime = {"srfer.errors"}
    bad = sorted(
        f"{module} → {target}"
        for module, targets in graph.items()
        if _under(module, layer)
        for target in targets
        if any(_under(target, banned) for banned in RULES[layer]) and target not in allowed_in_runtime
    )
    assert not bad, f"{layer} imports upwards: {bad}"


def test_only_the_cli_imports_the_cli() -> None:
    graph = srfer_graph()
    entry_points = {"srfer.__main__"}  # `python -m srfer` runs the CLI
    bad = [
        m
        for m, targets in graph.items()
        if not _under(m, "srfer.cli")
        and m not in entry_points
        and any(_under(t, "srfer.cli") for t in targets)
    ]
    assert not bad
