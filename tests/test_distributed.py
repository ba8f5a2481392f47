"""Data-parallel training with torchrun: 2 CPU processes (gloo) match one process."""

from __future__ import annotations

import json
import shutil

from smallvision.core.paths import run_name
from tests.conftest import REPO, python_env, run
from tests.test_train import PATHS, RUN, project, set_recipe  # noqa: F401  (fixture: params.yaml + a prepared dataset)

# No dropout, augmentation or batch norm: with the same global batches, averaged gradients
# over two halves equal the gradient over the whole batch, so the runs agree to rounding.
RECIPE = {"model": {"backbone": {"name": "flatten"}, "head": {"pool": "flatten", "hidden": [32]}},
          "epochs": 3, "batch_size": 16, "optimizer": {"name": "sgd", "lr": 0.05}}


def train(folder, launcher: list[str]) -> dict:
    env = python_env()
    env["PYTHONPATH"] = str(REPO)
    run([*launcher, "-m", "stages.train", run_name(*RUN)], cwd=folder, env=env)  # the stage takes the run's key
    return json.loads((folder / PATHS.log_dir / "train.json").read_text())


def test_two_processes_match_one(project, tmp_path_factory):  # noqa: F811
    set_recipe(project, RECIPE)
    other = tmp_path_factory.mktemp("ddp")
    for name in ("params.yaml", "recipes.yaml"):
        shutil.copy(project / name, other / name)
    shutil.copytree(project / "data", other / "data")

    single = train(project, ["python"])
    parallel = train(other, ["torchrun", "--standalone", "--nproc_per_node=2"])
    assert single["processes"] == 1 and parallel["processes"] == 2
    for key in ("train_loss", "val_loss", "val_accuracy"):
        assert abs(single["final"][key] - parallel["final"][key]) < 1e-4, key
    assert (other / PATHS.model_dir / "best.pt").exists()
