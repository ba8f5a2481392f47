"""End to end: the real `dvc repro` in a fresh copy of the repository, at tiny settings."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import copy_repo, edit_params, run, shared_path


def tiny(params: dict, epochs: int = 2) -> None:
    params["prepare"]["image_size"] = 16
    for recipe in params["recipes"].values():
        if recipe.get("method", "torch") != "torch":
            recipe["max_iter"] = 100
        elif recipe["model"].get("freeze") == "all":
            recipe["epochs"] = 20  # a linear probe on features embedded once: epochs are nearly free
        else:  # at most 32 px: ImageNet networks learn little from 16 px in two epochs
            recipe.update(epochs=epochs, input_size=min(recipe.get("input_size") or 16, 32))
    params["evaluate"]["timing_repeats"] = 1


def commit(repo, message: str) -> None:
    run(["git", "add", "-A"], cwd=repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", message], cwd=repo)


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    repo = copy_repo(tmp_path_factory.mktemp("repo"))
    params = edit_params(repo, tiny)
    commit(repo, "tiny settings")
    first = run(["dvc", "repro"], cwd=repo)
    return repo, params, first


def test_repro_produces_metrics_for_every_recipe(pipeline):
    repo, params, first = pipeline
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert set(metrics) == {"digits"}
    assert set(metrics["digits"]) == set(params["benchmark"]["recipes"])
    for recipe, values in metrics["digits"].items():
        # Ten balanced classes: chance is 0.1; even one tiny epoch learns far more than that.
        assert values["accuracy"] > 0.3, (recipe, values)
        for key in ("balanced_accuracy", "macro_f1", "macro_precision", "macro_recall", "roc_auc_ovr",
                    "top5_accuracy", "macro_tpr", "macro_tnr", "macro_fpr", "macro_fnr", "train_seconds",
                    "inference_images_per_second", "parameters"):
            assert key in values, (recipe, key)
    assert metrics["digits"]["logreg"]["accuracy"] > 0.85
    evaluation = repo / "reports/eval/digits/cnn"
    assert (evaluation / "predictions.csv").read_text().startswith("file,actual,predicted,correct,confidence,top5")
    assert len((evaluation / "per_class.csv").read_text().splitlines()) == 11
    page = (repo / "reports/index.html").read_text()
    assert "Leaderboard" in page or "leaderboard" in page
    assert "data:image/png;base64" in page and "http://" not in page.replace("http://www.w3.org", "")
    assert "| cnn |" in (repo / "reports/README.md").read_text()
    assert (repo / "dvc.lock").exists()


def test_second_repro_changes_nothing(pipeline):
    repo, _, _ = pipeline
    lock = (repo / "dvc.lock").read_text()
    again = run(["dvc", "repro"], cwd=repo)
    assert stages_run(again.stdout) == set()
    assert (repo / "dvc.lock").read_text() == lock


def test_changing_one_learning_rate_reruns_only_that_recipe(pipeline):
    """Through `dvc exp run -S`, as a user would; then the experiment shows in `dvc exp show`."""
    repo, _, _ = pipeline
    # `++` sets the key whether or not the recipe overrides the train default already.
    result = run(["dvc", "exp", "run", "-S", "++recipes.mlp.optimizer.lr=0.002"], cwd=repo)
    # validate re-checks params.yaml (its output does not change, so nothing else follows from it).
    assert stages_run(result.stdout) == {"validate", "train@digits-mlp", "evaluate@digits-mlp", "report"}
    shown = run(["dvc", "exp", "show", "--csv", "--drop", ".*", "--keep", r"mlp\.accuracy$|optimizer\.lr$"], cwd=repo)
    header, *rows = shown.stdout.strip().splitlines()
    assert "digits.mlp.accuracy" in header and "recipes.mlp.optimizer.lr" in header
    assert any(",0.002," in f"{row}," for row in rows)  # the experiment, with its own accuracy
    plots = run(["dvc", "plots", "show", "--json"], cwd=repo)
    assert "val_accuracy" in plots.stdout and "predictions.csv" in plots.stdout


def test_sprites_folder_end_to_end(tmp_path):
    """The README's 'any image folder' command, on the real Pokémon sprites (151 classes)."""
    sprites = shared_path("pokemon-sprites-gen1")
    repo = copy_repo(tmp_path / "repo")

    def restrict(params):
        tiny(params, epochs=2)
        params["benchmark"]["recipes"] = ["logreg", "cnn", "effnet_probe"]

    edit_params(repo, restrict)
    commit(repo, "tiny")
    run(["dvc", "exp", "run", "-S", "~datasets.digits", "-S", f"+datasets.sprites.root={sprites}",
         "-S", "+datasets.sprites.image_size=32"], cwd=repo)
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert set(metrics) == {"sprites"}
    prepared = json.loads((repo / "data/prepared/sprites/prepare.json").read_text())
    assert prepared["classes"] == 151 and prepared["images"] > 2000
    for recipe, values in metrics["sprites"].items():
        assert values["accuracy"] > 3 / 151, (recipe, values)  # well above chance
    assert metrics["sprites"]["effnet_probe"]["accuracy"] > 0.2
