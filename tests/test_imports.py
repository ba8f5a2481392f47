"""The package's import structure: no import cycles (an import inside a function counts), and
validating params.yaml (stages validate and prepare) never imports torch, lightly or the SSL
package."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = ("smallvision", "stages")
HEAVY = ("torch", "lightly", "smallvision.ssl")


def module_files() -> dict[str, Path]:
    """Every module of the packages, by dotted name (a package by its __init__)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules that `name` imports, wherever the import statement stands.

    Edges are the modules the import statements name: `from a.b import c` is an edge to a.b.c
    when that is a module, else to a.b. An import inside a function counts as much as one at the
    top: deferring an import keeps a heavy dependency (torch, lightly) out of validation, but a
    cycle hidden that way is still two modules that cannot be understood, tested or moved one
    without the other. The implicit import of a module's parent package is not an edge: Python
    always initialises a package before its submodules, which is only a cycle if the submodule
    imports names back from that __init__ (an explicit edge, which is counted)."""
    is_package = path.name == "__init__.py"
    edges = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import a.b.c` of a name inside a module
                target = target.rpartition(".")[0]
            if target and target != name:
                edges.add(target)
    return edges


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (depth-first search, three colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_sees_the_imports():
    graph = import_graph()
    assert "smallvision.options.schema" in graph["smallvision.options.params"]
    assert "smallvision.options.recipes" in graph["smallvision.ssl.config"]
    assert "smallvision.options.params" in graph["stages.validate"]
    assert "smallvision.sources.digits" in graph["smallvision.sources"]  # `from package import submodule`


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_validation_imports_neither_torch_nor_the_ssl_package():
    """What the validate and prepare stages import, and loading params.yaml, stays light
    (stages that validate SSL recipes import smallvision.ssl.config inside their main)."""
    code = (
        "import sys\n"
        "import stages.validate, stages.prepare\n"
        "from smallvision.options.params import load_params\n"
        "load_params()\n"
        f"print(sorted(m for m in sys.modules if m in {HEAVY!r}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"imported: {result.stdout.strip()}"


def test_the_graph_counts_an_import_inside_a_function(tmp_path):
    source = tmp_path / "a.py"
    source.write_text("def f():\n    from smallvision.core import io\n")
    assert imported_modules("x", source, module_files()) == {"smallvision.core.io"}


@pytest.mark.parametrize("registry", ["BACKBONES", "OPTIMIZERS", "SCHEDULES", "LOSSES", "METHODS", "PREDICTORS"])
def test_every_option_name_has_its_implementation(registry):
    """The options name what params.yaml may say; the torch modules register what builds each
    name: once imported, every name has exactly one implementation."""
    import smallvision.fit.optim  # noqa: F401
    import smallvision.inference  # noqa: F401  (the predictors)
    import smallvision.models.backbones  # noqa: F401
    import smallvision.train.losses  # noqa: F401
    import smallvision.train.methods  # noqa: F401  (every method's fit)
    from smallvision.options.model import BACKBONES
    from smallvision.options.recipes import METHODS, PREDICTORS
    from smallvision.options.train import LOSSES, OPTIMIZERS, SCHEDULES

    chosen = {"BACKBONES": BACKBONES, "OPTIMIZERS": OPTIMIZERS, "SCHEDULES": SCHEDULES, "LOSSES": LOSSES,
              "METHODS": METHODS, "PREDICTORS": PREDICTORS}[registry]
    assert chosen.implemented() == chosen.names()
    for name in chosen.names():
        assert callable(chosen.implementation(name)), name


def test_the_options_name_no_implementation_module():
    """No string in smallvision.options names a module outside it (a lazy 'module:attr' builder
    reference would put the training code back into what validation and prepare depend on)."""
    for path in (REPO / "smallvision/options").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not node.value.startswith("smallvision.") or node.value.startswith("smallvision.options"), \
                    f"{path.name}: {node.value!r}"


def test_every_recipe_method_is_registered_once_with_its_defaults_block():
    from typing import get_args

    import smallvision.inference  # noqa: F401
    from smallvision.options.recipes import METHODS, Recipe

    assert set(METHODS.names()) == {"torch", "knn", "logreg", "majority"}
    for name in METHODS.names():
        assert METHODS[name].model_fields["method"].annotation.__args__ == (name,)
        assert isinstance(smallvision.inference.PREDICTORS.implementation(name).WEIGHTS, str)
    assert {name for name in METHODS.names() if METHODS[name].defaults == "train"} == {"torch", "knn"}
    members = get_args(get_args(Recipe)[0])  # Annotated[Union[...], discriminator]
    assert set(members) == {METHODS[name] for name in METHODS.names()}
