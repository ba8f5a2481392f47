"""End to end: the real `dvc repro` / `dvc exp run` in a fresh copy of the repository, with
every recipe in params.yaml on a tiny dataset (one epoch, 32 px, four classes). The recipes run
in parts (see `pipeline` in conftest.py); a test on every part sees each recipe once."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch

from smallvision.config import load_params
from smallvision.data.prepared import load_prepared
from smallvision.train.device import seed_everything
from smallvision.models.build import build_for_data
from smallvision.train.resumable import BEST
from tests.conftest import (
    PIPELINE_PARTS,
    part_of,
    part_recipes,
    pipeline_part,
    recipe_names,
    run,
    stages_run,
)


def test_the_parts_hold_every_recipe_once():
    parts = [part_recipes(part) for part in range(PIPELINE_PARTS)]
    assert sorted(sum(parts, [])) == sorted(recipe_names()) and all(parts)
    assert all(part_of(name) == part for part, names in enumerate(parts) for name in names)


def test_every_recipe_produces_metrics(pipeline):
    repo, params, _ = pipeline
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    ours = [run["recipe"] for run in params["runs"].values()]
    assert set(metrics) == {"tiny"} and set(metrics["tiny"]) == set(ours)
    for recipe, values in metrics["tiny"].items():
        for key in ("accuracy", "balanced_accuracy", "macro_f1", "macro_precision", "macro_recall", "roc_auc_ovr",
                    "macro_tpr", "macro_tnr", "macro_fpr", "macro_fnr", "train_seconds",
                    "inference_images_per_second", "parameters"):
            assert key in values, (recipe, key)
        assert 0 <= values["accuracy"] <= 1
    # The classes are easy (a coloured square in a class-specific corner): recipes that are not
    # crippled by one tiny epoch from random weights learn them.
    for recipe in {"logreg", "mlp", "cnn", "effnet_probe", "cars_retrieval_knn"} & set(ours):
        assert metrics["tiny"][recipe]["accuracy"] > 0.5, recipe
    for recipe in {"cars_retrieval_knn", "effnet_knn"} & set(ours):  # the latter untrained: ImageNet features of squares
        assert {"k2_accuracy", "k3_accuracy", "k4_accuracy", "k"} <= set(metrics["tiny"][recipe]), recipe
    evaluation = repo / "reports/eval/tiny" / ours[0] / "s0"
    assert (evaluation / "predictions.csv").read_text().startswith("file,actual,predicted,correct,confidence,top5")
    assert len((evaluation / "per_class.csv").read_text().splitlines()) == 5
    page = (repo / "reports/index.html").read_text()
    assert "Leaderboard" in page and "data:image/png;base64" in page
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page
    assert f"| {ours[0]} |" in (repo / "reports/README.md").read_text()


FROZEN_POLICIES = ["effnet_probe", "pokemon_vgg16_transfer", "photos_mobilenet_frozen", "photos_mobilenet_last10",
                   "types_resnet50_focal"]


@pytest.mark.parametrize("name, pipeline", [pipeline_part(part_of(name), name) for name in FROZEN_POLICIES],
                         indirect=["pipeline"])
def test_freezing_policy_really_froze(pipeline, name, monkeypatch):
    """Rebuild the recipe's initial model (same seed) and compare with what training saved:
    frozen parameters and their norm statistics are untouched, trainable ones moved."""
    repo, _, _ = pipeline
    monkeypatch.chdir(repo)
    recipe = load_params(repo / "params.yaml").recipe(name)
    data = load_prepared("tiny", folder=repo / "data/prepared/tiny")
    seed_everything(recipe.seed)
    initial = build_for_data(recipe, data)
    trained = torch.load(repo / "data/models/tiny" / name / "s0" / BEST, weights_only=True)
    frozen = {n for n, p in initial.named_parameters() if not p.requires_grad}
    trainable = {n for n, p in initial.named_parameters() if p.requires_grad}
    assert frozen and trainable
    if recipe.model.freeze == "all":
        assert all(n.startswith("backbone.") for n in frozen) and all(n.startswith("head.") for n in trainable)
    if recipe.model.freeze == "stages":
        assert {n.split(".")[1] for n in trainable if n.startswith("backbone.")} == {"layer3", "layer4"}
    if recipe.model.freeze == "last_n":
        layers = [m for m in initial.backbone.modules() if list(m.parameters(recurse=False))]
        assert sum(1 for m in layers if next(m.parameters()).requires_grad) == recipe.model.trainable_last
    state = initial.state_dict()
    for key in frozen:
        assert torch.equal(state[key], trained[key]), f"{name}: frozen {key} changed"
    assert any(not torch.equal(state[key], trained[key]) for key in trainable), f"{name}: nothing trained"
    frozen_norm_stats = [k for k in state if k.endswith("running_mean") and k.replace("running_mean", "weight") in frozen]
    assert all(torch.equal(state[k], trained[k]) for k in frozen_norm_stats)


def test_second_repro_changes_nothing(pipeline):
    repo, _, _ = pipeline
    lock = (repo / "dvc.lock").read_text()
    again = run(["dvc", "repro"], cwd=repo)
    assert stages_run(again.stdout) == set()
    assert (repo / "dvc.lock").read_text() == lock


@pytest.mark.parametrize("pipeline", [pipeline_part(part_of("mlp"))], indirect=True)
def test_changing_one_learning_rate_reruns_only_that_recipe(pipeline):
    """Through `dvc exp run -S`, as a user would; the experiment then shows in `dvc exp show`."""
    repo, _, _ = pipeline
    # `++` sets the key whether or not the recipe overrides the train default already.
    result = run(["dvc", "exp", "run", "-S", "recipes.yaml:++mlp.optimizer.lr=0.002"], cwd=repo)
    # validate re-checks the params files (its output does not change, so nothing else follows from it).
    assert stages_run(result.stdout) == {"validate", "train@tiny-mlp-s0", "evaluate@tiny-mlp-s0", "report"}
    rows = list(csv.DictReader(io.StringIO(run(["dvc", "exp", "show", "--csv"], cwd=repo).stdout)))
    experiment = [row for row in rows if row.get("mlp.optimizer.lr") == "0.002"]
    assert experiment, rows[0].keys()
    assert 0 <= float(experiment[0]["headline.tiny.mlp"]) <= 1  # with its own headline figure
    plots = run(["dvc", "plots", "show", "--json"], cwd=repo)
    assert "val_accuracy" in plots.stdout and "predictions.csv" in plots.stdout
