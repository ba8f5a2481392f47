"""End to end on a tiny dataset (one epoch, 32 px, four classes), in a fresh copy of the
repository: every recipe through the stage scripts (`every_recipe`), and one recipe of each
method through the real `dvc repro` / `dvc exp run` (`pipeline`; see conftest.py)."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil

import pytest
import torch

from smallvision.core.paths import BEST
from smallvision.core.prepared import load_prepared
from smallvision.models.build import build_for_data
from smallvision.models.device import seed_everything
from smallvision.options.params import load_params
from tests.conftest import (
    EVERY_RECIPE,
    PIPELINE,
    PIPELINE_RECIPES,
    REPO,
    python_env,
    read_yaml,
    recipe_names,
    run,
    stages_run,
)
from tests.test_dvc_deps import stage_definitions


@EVERY_RECIPE
def test_every_recipe_produces_metrics(every_recipe):
    repo, params = every_recipe
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    ours = [run["recipe"] for run in params["runs"].values()]
    assert ours == recipe_names()
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
    evaluation = repo / "reports/eval" / f"tiny-{ours[0]}-s0"
    assert (evaluation / "predictions.csv").read_text().startswith("file,actual,predicted,correct,confidence,top5")
    assert len((evaluation / "per_class.csv").read_text().splitlines()) == 5
    page = (repo / "reports/index.html").read_text()
    assert "Leaderboard" in page and "data:image/png;base64" in page
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page
    assert f"| {ours[0]} |" in (repo / "reports/README.md").read_text()


def declared_outputs(stage: str, key: str, run_: dict) -> list[str]:
    """The paths dvc.yaml's foreach stage declares (outs, metrics, plots) for one run."""
    declared = stage_definitions()[stage]
    paths = [next(iter(entry)) if isinstance(entry, dict) else entry
             for kind in ("outs", "metrics", "plots") for entry in declared.get(kind, [])]
    return [re.sub(r"\$\{item\.(\w+)\}", lambda name: str(run_[name.group(1)]), path.replace("${key}", key))
            for path in paths]


@EVERY_RECIPE
def test_every_recipe_writes_each_output_dvc_yaml_declares(every_recipe):
    """What `dvc repro` would refuse if it were missing, checked for runs made outside DVC."""
    repo, params = every_recipe
    missing = [path for key, run_ in params["runs"].items() for stage in ("train", "evaluate")
               for path in declared_outputs(stage, key, run_) if not (repo / path).exists()]
    assert not missing


def test_the_pipeline_recipes_are_one_of_each_method():
    methods = [read_yaml(REPO / "recipes.yaml")[name].get("method", "torch") for name in PIPELINE_RECIPES]
    assert sorted(methods) == ["knn", "logreg", "torch"]


@PIPELINE
def test_dvc_repro_runs_each_listed_recipe_once_and_reports_it(pipeline):
    repo, params, first = pipeline
    runs = set(params["runs"])
    assert {stage.split("@", 1)[1] for stage in stages_run(first.stdout) if "@tiny-" in stage} == runs
    assert {f"train@{name}" for name in runs} | {f"evaluate@{name}" for name in runs} <= stages_run(first.stdout)
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert set(metrics["tiny"]) == set(PIPELINE_RECIPES)


FROZEN_POLICIES = ["effnet_probe", "pokemon_vgg16_transfer", "photos_mobilenet_frozen", "photos_mobilenet_last10",
                   "types_resnet50_focal"]


@EVERY_RECIPE
@pytest.mark.parametrize("name", FROZEN_POLICIES)
def test_freezing_policy_really_froze(every_recipe, name, monkeypatch):
    """Rebuild the recipe's initial model (same seed) and compare with what training saved:
    frozen parameters and their norm statistics are untouched, trainable ones moved."""
    repo, _ = every_recipe
    monkeypatch.chdir(repo)
    recipe = load_params(repo / "params.yaml").recipe(name)
    data = load_prepared("tiny", folder=repo / "data/prepared/tiny")
    seed_everything(recipe.seed)
    initial = build_for_data(recipe, data)
    trained = torch.load(repo / "data/models" / f"tiny-{name}-s0" / BEST, weights_only=True)
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


@PIPELINE
def test_second_repro_changes_nothing(pipeline):
    repo, _, _ = pipeline
    lock = (repo / "dvc.lock").read_text()
    again = run(["dvc", "repro"], cwd=repo)
    assert stages_run(again.stdout) == set()
    assert (repo / "dvc.lock").read_text() == lock


@PIPELINE
def test_byte_code_leaves_every_stage_up_to_date(pipeline):
    """Python writes __pycache__/ beside each module it imports unless PYTHONDONTWRITEBYTECODE is
    set, as this suite sets it and a user's Python does not: once, one `python -m smallvision.predict`
    or `pytest` made every stage stale, and the next `dvc repro` reran them all (.dvcignore)."""
    repo, _, _ = pipeline
    env = python_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    try:
        run(["python", "-c", "import smallvision.predict, smallvision.train.methods, stages.report"], cwd=repo, env=env)
        run(["python", "-m", "compileall", "-q", "smallvision", "stages", "tests"], cwd=repo, env=env)
        assert (repo / "smallvision/train/__pycache__").is_dir()
        assert "Data and pipelines are up to date" in run(["dvc", "status"], cwd=repo, env=env).stdout
        assert stages_run(run(["dvc", "repro"], cwd=repo, env=env).stdout) == set()
    finally:
        for cache in [path for path in repo.rglob("__pycache__") if ".dvc" not in path.parts]:
            shutil.rmtree(cache)


@PIPELINE
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


@PIPELINE
def test_changing_the_test_size_retrains_nothing(pipeline):
    """evaluate.test_size_scale is read by the evaluations alone (the README says so); none of these
    recipes pools its features, so each is tested at its one size and its metrics name no test size."""
    repo, _, _ = pipeline
    ran = stages_run(run(["dvc", "exp", "run", "-S", "evaluate.test_size_scale=1.25"], cwd=repo).stdout)
    assert {f"evaluate@tiny-{recipe}-s0" for recipe in PIPELINE_RECIPES} <= ran
    assert {stage.split("@")[0] for stage in ran} <= {"validate", "evaluate", "report"}, ran
    for recipe in PIPELINE_RECIPES:
        assert "test_size" not in json.loads((repo / f"reports/eval/tiny-{recipe}-s0/metrics.json").read_text())
    # predict scores as the evaluation did, and says nothing of it on stdout, where its --json goes
    first = next(csv.DictReader((repo / "reports/eval/tiny-logreg-s0/predictions.csv").open()))
    image = f"{load_params(repo / 'params.yaml').dataset('tiny').root}/{first['file']}"
    out = run(["python", "-m", "smallvision.predict", image, "--arm", "logreg", "--json"], cwd=repo)
    assert json.loads(out.stdout)[0]["arm"] == "logreg"


@PIPELINE
def test_an_edit_to_the_training_loop_leaves_every_prepared_dataset_up_to_date(pipeline):
    """DVC itself: after an edit to smallvision/train/loop.py, `dvc status` lists the training
    stages but not prepare (its code deps are its own package and the torch-free options)."""
    repo, _, _ = pipeline
    loop = repo / "smallvision/train/loop.py"
    original = loop.read_text()
    loop.write_text(original + "\n# an edit\n")
    try:
        status = run(["dvc", "status"], cwd=repo).stdout
        assert "train@tiny-mlp-s0" in status
        assert "prepare@tiny" not in status, status
    finally:
        loop.write_text(original)
