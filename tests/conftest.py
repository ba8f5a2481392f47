"""Shared fixtures: synthetic image folders, the ../shared data, a runnable copy of the repo."""

from __future__ import annotations

import os

# Tests run in two pytest-xdist workers on a 2-core machine: one thread each (and in the stages
# they start) avoids the slowdown of OpenMP threads spinning against each other. Set before
# torch is imported anywhere.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def pytest_collection_modifyitems(items):
    """Grouped tests (the long pipeline parts) first: each worker starts one part at once and
    then works through the rest, instead of a part starting last."""
    items.sort(key=lambda item: item.get_closest_marker("xdist_group") is None)


def shared_path(*parts: str) -> Path:
    """A folder of ../shared/data, or a skip with the reason when this machine lacks it."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not on this machine (../shared holds the real test data)")
    return path


def class_image(label: int, rng: np.random.Generator, size: int = 24) -> np.ndarray:
    """A learnable synthetic image: a bright square whose position and colour depend on the class."""
    image = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
    row, col = divmod(label % 4, 2)
    half = size // 2
    image[row * half:(row + 1) * half, col * half:(col + 1) * half, label % 3] = 230
    return image


def make_image_folder(root: Path, counts: dict[str, int], size: int = 24, seed: int = 0, fmt: str = "png") -> Path:
    rng = np.random.default_rng(seed)
    for label, (name, count) in enumerate(counts.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(class_image(label, rng, size)).save(root / name / f"{i:03d}.{fmt}")
    return root


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "images", {"alpha": 12, "beta": 12, "gamma": 12, "delta": 12})


def python_env() -> dict:
    """The environment stages run in: this interpreter's `python` and `dvc` first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["CI"] = "1"
    return env


def run(cmd: list[str], cwd: Path, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env or python_env(), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def copy_repo(dest: Path) -> Path:
    """A fresh git repository holding the project's tracked files (as a clone would)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:
        source = REPO / name
        if source.is_file() and not name.startswith(("data/", "reports/")):
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    (dest / "data").mkdir(exist_ok=True)
    (dest / "reports").mkdir(exist_ok=True)
    (dest / "dvc.lock").unlink(missing_ok=True)
    for command in (["git", "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-qm", "copy"]):
        subprocess.run(command, cwd=dest, check=True, capture_output=True)
    return dest


PARAMS_FILES = ("params.yaml", "recipes.yaml", "catalogue.yaml", "ssl.yaml")  # read together


def write_params(folder: Path, params: dict, recipes: dict | None = None) -> Path:
    """params.yaml (and recipes.yaml, or the project's) in `folder`, with the project's other
    params files beside it, as load_params and the stages read them."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in PARAMS_FILES[1:]:
        shutil.copy2(REPO / name, folder / name)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))
    if recipes is not None:
        (folder / "recipes.yaml").write_text(yaml.safe_dump(recipes, sort_keys=False, allow_unicode=True))
    return folder / "params.yaml"


def read_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def edit_params(repo: Path, change) -> tuple[dict, dict]:
    """change(params, recipes) edits params.yaml and recipes.yaml of `repo` in place."""
    params, recipes = read_yaml(repo / "params.yaml"), read_yaml(repo / "recipes.yaml")
    change(params, recipes)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))
    (repo / "recipes.yaml").write_text(yaml.safe_dump(recipes, sort_keys=False, allow_unicode=True))
    return params, recipes


def runs_for(dataset: str, recipes: list[str], seeds=(0,), definitions: dict | None = None) -> dict:
    """The `runs` section for these recipes on one dataset, each with these seeds."""
    from smallvision.options.recipes import defaults_block

    definitions = definitions if definitions is not None else read_yaml(REPO / "recipes.yaml")
    return {f"{dataset}-{recipe}-s{seed}": {
        "dataset": dataset, "recipe": recipe, "seed": seed,
        "defaults": defaults_block(definitions[recipe].get("method", "torch"))}
        for recipe in recipes for seed in seeds}


def write_prepared(folder: Path, images: np.ndarray, labels: np.ndarray, classes: list[str], seed: int = 0) -> Path:
    """A prepared dataset written straight from arrays (60/20/20 split), for loop-level tests."""
    from types import SimpleNamespace

    from smallvision.core.prepared import save_prepared

    order = np.random.default_rng(seed).permutation(len(images))
    cut1, cut2 = int(0.6 * len(order)), int(0.8 * len(order))
    splits = {"train": order[:cut1], "val": order[cut1:cut2], "test": order[cut2:]}
    decoded = SimpleNamespace(images=images, labels=labels, classes=classes,
                              files=[f"synthetic/{i}.png" for i in range(len(images))])
    folder.mkdir(parents=True, exist_ok=True)
    task = "multilabel" if labels.ndim == 2 else "single"
    save_prepared(folder, decoded, splits, {"task": task, "images": len(images)})
    return folder


def multilabel_arrays(count: int = 240, size: int = 16, labels: int = 4, seed: int = 0):
    """Images whose label k is present exactly when quadrant k holds a bright patch."""
    rng = np.random.default_rng(seed)
    targets = (rng.random((count, labels)) < 0.4).astype(np.uint8)
    targets[targets.sum(1) == 0, 0] = 1
    images = rng.integers(0, 50, (count, 3, size, size), dtype=np.uint8)
    half = size // 2
    for index, row in enumerate(targets):
        for label in np.flatnonzero(row):
            r, c = divmod(label, 2)
            images[index, :, r * half:(r + 1) * half, c * half:(c + 1) * half] = 220
    return images, targets


# ---------------------------------------------------------------------------------------
# Every recipe end to end on a tiny dataset, two ways. `every_recipe` runs the stage scripts
# (validate, prepare, train and evaluate of each recipe, report) in this one process: a stage's
# own process spends seconds importing torch, scikit-learn and dvclive, which over every recipe
# was most of the suite's time (8 of its 19 minutes on a 2-core Intel Xeon). `pipeline` runs the
# real `dvc repro` on one recipe of each method, for what only DVC does: which stages rerun, the
# lock, experiments, plots.

def tiny(params: dict, recipes: dict, epochs: int = 1) -> None:
    """Small, fast settings for every recipe, keeping what each recipe is about (its model,
    freezing, loss, sampler, augmentation). torchvision weights are not cached on test
    machines, so those backbones start from random (EfficientNet's ship in a package)."""
    from smallvision.models.backbones import TORCHVISION_NETS

    params["prepare"]["image_size"] = 32
    for recipe in recipes.values():
        if recipe.get("method", "torch") == "logreg":
            recipe["max_iter"] = 50
            continue
        if recipe.get("method") == "majority":  # nothing to shrink
            continue
        backbone = recipe["model"]["backbone"]
        if backbone["name"] in TORCHVISION_NETS:  # not cached on test machines
            backbone["weights"] = "none"
        if recipe["model"].get("freeze") == "all":  # a probe on features embedded once: cheap
            recipe.update(epochs=30, batch_size=8)
        else:
            recipe.update(epochs=epochs, input_size=None, batch_size=8)
    params["evaluate"]["timing_repeats"] = 1


def commit(repo, message: str) -> None:
    run(["git", "add", "-A"], cwd=repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", message], cwd=repo)


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


PIPELINE_RECIPES = ["logreg", "mlp", "effnet_knn"]  # one of each method: scikit-learn, torch, knn


def recipe_names() -> list[str]:
    return list(read_yaml(REPO / "recipes.yaml"))


def tiny_project(tmp_path_factory, recipes: list[str]) -> tuple[Path, dict]:
    """A committed copy of the repo whose runs are these recipes, at tiny settings, on a
    40-image dataset of four classes."""
    images = make_image_folder(tmp_path_factory.mktemp("images") / "tiny", {c: 10 for c in "abcd"}, size=40)
    repo = copy_repo(tmp_path_factory.mktemp("repo"))

    def recipes_on_tiny(params, definitions):
        tiny(params, definitions)
        params["datasets"] = {"tiny": {"root": str(images)}}
        params["runs"] = runs_for("tiny", recipes, definitions=definitions)

    params, _ = edit_params(repo, recipes_on_tiny)
    commit(repo, "tiny settings")
    return repo, params


def run_stage(repo: Path, stage: str, *arguments) -> None:
    """A stage script's main() in this process, from the repo's root, as `python -m stages.<stage>`
    would run it."""
    import importlib

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(repo)
        patch.setattr(sys, "argv", [stage, *map(str, arguments)])
        importlib.import_module(f"stages.{stage}").main()


@pytest.fixture(scope="session")
def every_recipe(tmp_path_factory):
    """Every recipe of recipes.yaml through the stage scripts (validate, prepare, train, evaluate,
    report), run in this process: (repo, params)."""
    repo, params = tiny_project(tmp_path_factory, recipe_names())
    run_stage(repo, "validate")
    run_stage(repo, "prepare", "tiny")
    for run_ in params["runs"].values():
        for stage in ("train", "evaluate"):
            run_stage(repo, stage, f"{run_['dataset']}-{run_['recipe']}-s{run_['seed']}")
    run_stage(repo, "report")
    return repo, params


EVERY_RECIPE = pytest.mark.xdist_group("every_recipe")  # one worker builds the fixture, once
PIPELINE = pytest.mark.xdist_group("pipeline")


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory):
    """One recipe of each method through `dvc repro`: (repo, params, output)."""
    repo, params = tiny_project(tmp_path_factory, PIPELINE_RECIPES)
    first = run(["dvc", "repro"], cwd=repo)
    return repo, params, first


def refusal(tmp_path: Path, change) -> str:
    """The message of the UserError that load_params raises on the repository's params.yaml and
    recipes.yaml after change(params, recipes)."""
    from smallvision.core.errors import UserError
    from smallvision.options.params import load_params

    params, recipes = read_yaml(REPO / "params.yaml"), read_yaml(REPO / "recipes.yaml")
    change(params, recipes)
    with pytest.raises(UserError) as err:
        load_params(write_params(tmp_path, params, recipes))
    return str(err.value)
