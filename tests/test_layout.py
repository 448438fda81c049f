"""The package's shape: no module imports another that imports it back, the network families and
the settings agree, and the benchmarks use only public names."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import ganforge

PACKAGE = Path(ganforge.__file__).parent
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
_MODULE_STRING = re.compile(r"^(ganforge(?:\.\w+)+)(?::\w+)?$")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports, at the top or inside functions, including
    modules named in strings for importlib ("ganforge.cli.train:train_command"). Importing a
    submodule also runs its packages' __init__ files; those implicit edges are left out, since
    every module would then "import" its own package."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    packages = {name for name, p in files.items() if p.name == "__init__.py"}

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in files.items():
        here = name if name in packages else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(here.split(".")[: len(here.split(".")) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and (m := _MODULE_STRING.match(node.value)):
                targets = [m.group(1)]
            edges |= {t for t in map(resolve, (t for t in targets if t.split(".")[0] == "ganforge")) if t and t != name}
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_two_modules_import_each_other():
    graph = import_graph()
    assert len(graph) > 30 and "ganforge.gan.trainer" in graph["ganforge.gan.loop"]
    assert "ganforge.cli.train" in graph["ganforge.cli.main"]  # named in a string for importlib: counted
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles_through_other_modules_and_in_functions(tmp_path, monkeypatch):
    graph = import_graph()
    assert find_cycle({**graph, "ganforge.gan.networks": graph["ganforge.gan.networks"] | {"ganforge.gan.loop"}}) is not None
    # the same, written as a function-level import in a copy of the package
    import shutil

    copy = tmp_path / "ganforge"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    data = copy / "data.py"
    data.write_text(data.read_text() + "\n\ndef _late():\n    from ganforge.scoring import evaluate\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", copy)
    assert find_cycle(import_graph())[0] in ("ganforge.data", "ganforge.evaluate")


def test_the_network_families_are_the_settings_choices():
    from ganforge.gan.config import ARCHS
    from ganforge.gan.networks import FAMILIES

    assert set(ARCHS) | {"progressive"} == set(FAMILIES)  # progressive growing is --grow


def test_benchmarks_use_public_names_that_exist():
    import importlib

    scripts = list(BENCHMARKS.glob("*.py"))
    assert len(scripts) >= 5
    for script in scripts:
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ganforge"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{script.name} imports {private} from {node.module}"
                module = importlib.import_module(node.module)
                assert all(hasattr(module, a.name) for a in node.names), f"{script.name}: {node.module} lacks one of {[a.name for a in node.names]}"


def test_the_package_level_api_names_functions_and_classes():
    import importlib

    for name in ganforge._API:
        for _ in range(2):  # importing a module of the same name must not shadow the function
            importlib.import_module(ganforge._API[name])
            assert callable(getattr(ganforge, name)) and not isinstance(getattr(ganforge, name), type(ganforge)), name
