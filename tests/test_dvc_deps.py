"""Every stage of dvc.yaml depends on all the code it runs: the import closure of its command
(every import, at module level or inside a function, the packages above each module, and the
`"module:attr"` builders the registries import lazily) must be covered by the stage's deps.
`fetch` alone is exempt, as dvc.yaml says: a code edit must not download every dataset again."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.test_imports import module_files

EXEMPT = {"fetch"}
WHOLE_PACKAGE = {"validate", "report"}  # run in seconds, and most of the package: their deps say `smallvision`
LAZY_BUILDER = re.compile(r"^((?:smallvision|stages)(?:\.\w+)+)(?::\w+)?$")


def referenced(source: str, name: str, is_package: bool, modules: dict) -> set[str]:
    """Every repository module this source may import, wherever the import statement stands."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = name.split(".") if is_package else name.split(".")[:-1]
            prefix = ".".join(base[:len(base) - node.level + 1]) if node.level else ""
            module = ".".join(part for part in (prefix, node.module or "") if part)
            found |= {module} | {f"{module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and LAZY_BUILDER.match(node.value):
            found.add(LAZY_BUILDER.match(node.value)[1])
    resolved = set()
    for target in found:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        parts = target.split(".") if target else []
        resolved |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}  # packages run their __init__
    return resolved & set(modules)


def closure(start: set[str], modules: dict) -> set[str]:
    seen, pending = set(), list(start)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        path = modules[name]
        pending += referenced(path.read_text(), name, path.name == "__init__.py", modules) - seen
    return seen


def stage_definitions() -> dict[str, dict]:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in stages.items()}


def entry_modules(stage: dict, modules: dict) -> set[str]:
    command = re.search(r"-m (\S+)", stage["cmd"])[1]
    start = {command}
    if "stages.report" == command:  # the report executes the notebook template, whose code imports too
        cells = json.loads((REPO / "notebooks/report.ipynb").read_text())["cells"]
        code = "\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "code")
        start |= referenced(code, "notebook", False, modules)
    return start


def covered(path: Path, deps: list[str]) -> bool:
    relative = path.relative_to(REPO)
    return any(relative == Path(dep) or Path(dep) in relative.parents for dep in deps if "${" not in dep)


def deps_and_code(stage: str) -> tuple[list[str], list[Path]]:
    """A stage's deps (paths) and the files of every module its command runs."""
    modules = module_files()
    definition = stage_definitions()[stage]
    deps = [dep if isinstance(dep, str) else next(iter(dep)) for dep in definition.get("deps", [])]
    return deps, [modules[name] for name in closure(entry_modules(definition, modules), modules)]


@pytest.mark.parametrize("stage", sorted(set(stage_definitions()) - EXEMPT))
def test_stage_depends_on_every_module_it_runs(stage):
    deps, code = deps_and_code(stage)
    missing = sorted(str(path.relative_to(REPO)) for path in code if not covered(path, deps))
    assert not missing, f"dvc.yaml: stage {stage} runs code it does not depend on: {', '.join(missing)}"


@pytest.mark.parametrize("stage", sorted(set(stage_definitions()) - EXEMPT))
def test_stage_depends_on_no_code_it_never_runs(stage):
    """The other direction: a code dep that holds none of the stage's modules reruns the stage
    for edits that cannot change its outputs (a report tweak retraining every SSL backbone)."""
    deps, code = deps_and_code(stage)
    code_deps = [dep for dep in deps if "${" not in dep and Path(dep).parts[0] in ("smallvision", "stages")]
    unused = [dep for dep in code_deps if not any(covered(path, [dep]) for path in code)]
    assert not unused, f"dvc.yaml: stage {stage} depends on code it never runs: {', '.join(unused)}"


@pytest.mark.parametrize("stage", sorted(set(stage_definitions()) - EXEMPT - WHOLE_PACKAGE))
def test_a_code_folder_a_stage_depends_on_holds_only_code_it_runs(stage):
    """Finer than the test above: an edit to any module a stage never runs must not rerun it, so a
    folder dep may hold no such module (pretraining is not redone for an edit of the SSL
    evaluation or of a benchmark; training not for one of the prepare code, when the arrays it
    writes are the same)."""
    deps, code = deps_and_code(stage)
    modules = module_files().values()
    unrun = sorted(str(path.relative_to(REPO)) for dep in deps if "${" not in dep and (REPO / dep).is_dir()
                   for path in modules if REPO / dep in path.parents and path not in code)
    assert not unrun, f"dvc.yaml: stage {stage} depends on folders holding code it never runs: {', '.join(unrun)}"


def code_deps(stage: str) -> set[str]:
    definition = stage_definitions()[stage]
    return {dep for dep in definition.get("deps", []) if isinstance(dep, str) and dep.startswith(("smallvision", "stages"))}


def test_preparing_reads_no_training_code():
    """prepare's closure stops at the torch-free options: an edit to the training loop, the models or
    the evaluation cannot re-prepare (re-decode) a dataset. The options name no implementation
    (tests/test_imports.py), so this holds by construction, not by a hand-kept list."""
    deps, code = deps_and_code("prepare")
    assert not any(part in str(path) for path in code for part in ("/train/", "/models/", "/fit/", "inference"))
    assert {"smallvision/train", "smallvision/models", "smallvision/fit"}.isdisjoint(deps)


def test_a_stages_code_deps_are_its_own_packages_and_the_shared_ones():
    """A few folder lines a stage, not a hand-kept list of modules: 51 code lines in all (the
    layout before the options package had 116)."""
    lines = sum(len(code_deps(stage)) for stage in stage_definitions())
    assert lines <= 58, lines
    for stage in ("prepare", "train", "evaluate", "pretrain", "ssl_evaluate"):
        assert {"smallvision/core", "smallvision/options"} <= code_deps(stage), stage


def test_the_closure_follows_lazy_imports_and_builders():
    """The walker itself: an import inside a function and a registry's "module:attr" count."""
    modules = {"smallvision": None, "smallvision.a": None, "smallvision.b": None, "smallvision.c": None}
    source = 'def f():\n    from smallvision import a\nBUILD = "smallvision.b:build"\nimport smallvision.c\n'
    assert referenced(source, "x", False, modules) == {"smallvision", "smallvision.a", "smallvision.b",
                                                       "smallvision.c"}


def test_dvc_lock_holds_only_the_stages_of_dvc_yaml():
    """A stage removed from dvc.yaml (or a run from params.yaml) must leave dvc.lock too: its entry
    would be taken for a result of the current pipeline. The stages as DVC expands them."""
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        stages = {stage.addressing for stage in repo.index.stages}
    stale = sorted(set(yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]) - stages)
    assert not stale, f"dvc.lock holds stages that dvc.yaml and params.yaml no longer define: {', '.join(stale)}"
