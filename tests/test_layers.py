"""Issue 25: shared/'s packages are layers that point one way, and no module imports itself in a circle.

Every import counts, those inside functions too: a deferred import is still a dependency.
"""

import ast
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1] / "shared"
# Lowest first: a package may import only from itself and those before it.
LAYERS = ("core", "volume", "data", "training", "reports", "serving", "orchestration", "deploy")


def _module(path: Path) -> str:
    parts = path.relative_to(SHARED.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(source: str, module: str) -> set[str]:
    """The shared.* modules `source` imports (`from shared.x import y` counts as shared.x.y when that is
    a module, else shared.x)."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("shared.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("shared"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                exists = (SHARED.parent / candidate.replace(".", "/")).with_suffix(".py").exists() or \
                    (SHARED.parent / candidate.replace(".", "/")).is_dir()
                out.add(candidate if exists else node.module)
    return out - {module}


def graph() -> dict[str, set[str]]:
    return {_module(p): imports(p.read_text(), _module(p)) for p in SHARED.rglob("*.py")}


def problems(edges: dict[str, set[str]]) -> list[str]:
    found = []
    for module, targets in edges.items():
        here = module.split(".")[1] if module.count(".") else None
        for target in targets:
            there = target.split(".")[1] if target.count(".") else None
            if here is None or there is None:
                continue
            if here not in LAYERS or there not in LAYERS:
                found.append(f"{module} -> {target}: package not in LAYERS")
            elif LAYERS.index(there) > LAYERS.index(here):
                found.append(f"{module} -> {target}: upward import ({here} is below {there})")
    # cycles between modules, by depth-first search
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                found.append("cycle: " + " -> ".join(path[path.index(target):] + [target]))
            elif target in edges and target not in state:
                visit(target, path + [target])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def test_every_package_of_shared_is_a_layer():
    packages = {p.name for p in SHARED.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(LAYERS)


def test_shared_has_no_cycle_and_no_upward_import():
    assert problems(graph()) == []


@pytest.mark.parametrize(("edges", "expected"), [
    ({"shared.volume.a": {"shared.reports.b"}, "shared.reports.b": set()}, "upward import"),
    ({"shared.data.a": {"shared.data.b"}, "shared.data.b": {"shared.data.a"}}, "cycle"),
    ({"shared.core.x": {"shared.core.y"}, "shared.core.y": {"shared.core.z"}, "shared.core.z": {"shared.core.x"}},
     "cycle"),
])
def test_the_check_fails_on_what_it_forbids(edges, expected):
    assert any(expected in p for p in problems(edges))


def test_deferred_imports_count():
    source = "def f():\n    from shared.reports.summary import rows\n"
    assert "shared.reports.summary" in imports(source, "shared.volume.x")
