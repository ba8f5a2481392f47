"""Multilabel targets and kNN retrieval through the one loop and the evaluation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from smallvision.core.errors import UserError
from smallvision.core.paths import run_paths
from smallvision.core.prepared import load_prepared
from smallvision.evaluate import evaluate_recipe
from smallvision.models.metrics import multilabel_metrics
from smallvision.models.retrieval import knn_scores
from smallvision.options.params import EvaluateConfig, _recipe
from smallvision.train.methods import fit
from tests.conftest import REPO, class_image, multilabel_arrays, write_prepared

TRAIN_DEFAULTS = yaml.safe_load((REPO / "params.yaml").read_text())["train"]
CNN = {"model": {"backbone": {"name": "cnn", "widths": [16, 32]}}, "epochs": 8, "batch_size": 32,
       "optimizer": {"lr": 0.01}}


def run_recipe(tmp_path, monkeypatch, name, spec, data_folder):
    """Train and evaluate like the stages do, inside a scratch project folder."""
    monkeypatch.chdir(tmp_path)
    recipe = _recipe(name, {"train": TRAIN_DEFAULTS, "sklearn": {}}, spec)
    data = load_prepared("demo", folder=data_folder)
    paths = run_paths("demo", name, 0)
    fit(recipe, data, paths)
    return evaluate_recipe(recipe, data, EvaluateConfig(timing_repeats=1), paths.model_dir, paths.log_dir,
                           tmp_path / "reports/eval/demo" / name)


def test_multilabel_training_and_metrics(tmp_path, monkeypatch):
    images, targets = multilabel_arrays()
    folder = write_prepared(tmp_path / "prepared", images, targets, ["a", "b", "c", "d"])
    for loss in ("cross_entropy", "focal", "weighted_cross_entropy"):  # each in its sigmoid form
        metrics = run_recipe(tmp_path, monkeypatch, f"ml_{loss}", {**CNN, "loss": {"name": loss}}, folder)
        assert metrics["micro_f1"] > 0.8, (loss, metrics)
        assert 0 <= metrics["hamming_loss"] < 0.2 and metrics["binary_accuracy"] == 1 - metrics["hamming_loss"]
    logreg = run_recipe(tmp_path, monkeypatch, "ml_logreg", {"method": "logreg", "C": 0.1}, folder)
    assert logreg["micro_f1"] > 0.8 and logreg["parameters"] == 4 * (images[0].size + 1), logreg
    per_class = (tmp_path / "reports/eval/demo/ml_focal/per_class.csv").read_text().splitlines()
    assert per_class[0] == "class,precision,recall,f1,support" and len(per_class) == 5
    predictions = (tmp_path / "reports/eval/demo/ml_focal/predictions.csv").read_text()
    assert "|" in predictions  # label sets like "a|c"


def test_multilabel_metrics_by_hand():
    truth = np.array([[1, 0, 1], [0, 1, 0]])
    scores = np.array([[0.9, 0.2, 0.4], [0.1, 0.8, 0.3]])
    out = multilabel_metrics(truth, scores)
    assert out["accuracy"] == 0.5  # the first image misses label 2
    assert out["hamming_loss"] == 1 / 6
    assert out["micro_f1"] == 2 * 2 / (2 * 2 + 0 + 1)  # tp 2, fp 0, fn 1


def test_knn_votes():
    index = torch.tensor([[1.0, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]])
    labels = torch.tensor([0, 0, 1, 1])
    scores = knn_scores(index, labels, torch.tensor([[1.0, 0.05], [0.0, 1.0]]), k=2, num_classes=2)
    assert scores.argmax(1).tolist() == [0, 1] and np.allclose(scores.sum(1), 1)
    multi = knn_scores(index, torch.tensor([[1, 0], [1, 1], [0, 1], [0, 1]]), torch.tensor([[1.0, 0.0]]), k=2,
                       num_classes=2)
    assert np.allclose(multi, [[1.0, 0.5]], atol=1e-3)


def test_knn_recipe_reports_every_k(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 30)
    images = np.stack([class_image(int(label), rng, 16).transpose(2, 0, 1) for label in labels])
    folder = write_prepared(tmp_path / "prepared", images, labels, ["a", "b", "c", "d"])
    spec = {"method": "knn", "model": {"backbone": {"name": "cnn", "widths": [8, 16]}}, "ks": [1, 3, 5]}
    metrics = run_recipe(tmp_path, monkeypatch, "retrieval", spec, folder)
    assert {"k1_accuracy", "k3_accuracy", "k5_macro_f1", "k3_val_accuracy"} <= set(metrics)
    assert metrics["k"] in (1, 3, 5) and metrics["accuracy"] == metrics[f"k{metrics['k']}_accuracy"]
    curves = tmp_path / run_paths("demo", "retrieval", 0).log_dir / "plots/metrics"  # what dvc.yaml declares as plots
    assert curves == tmp_path / "reports/train/demo-retrieval-s0/plots/metrics"
    assert (curves / "val_accuracy.tsv").is_file(), sorted(curves.parent.rglob("*"))
    # Even a random convolutional network separates these classes for nearest neighbours.
    assert metrics["accuracy"] > 0.5
    finetuned = run_recipe(tmp_path, monkeypatch, "retrieval_ft", {**spec, **CNN, "finetune": True}, folder)
    assert finetuned["accuracy"] >= 0.9


def test_knn_on_an_untrained_backbone_has_its_seeds_weights(tmp_path, monkeypatch):
    """random_cnn_knn's features are its initialisation: the same seed gives the same weights,
    whatever ran before in the process, and another seed other weights."""
    from smallvision.core.paths import BEST

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(2), 10)
    images = np.stack([class_image(int(label), rng, 8).transpose(2, 0, 1) for label in labels])
    folder = write_prepared(tmp_path / "prepared", images, labels, ["a", "b"])
    monkeypatch.chdir(tmp_path)
    data = load_prepared("demo", folder=folder)
    weights = []
    for name, seed in (("first", 0), ("again", 0), ("other", 1)):
        spec = {"method": "knn", "model": {"backbone": {"name": "cnn", "widths": [4]}}}
        recipe = _recipe(name, {"train": TRAIN_DEFAULTS, "sklearn": {}}, spec).model_copy(update={"seed": seed})
        torch.rand(7)  # moves the global generator between runs
        fit(recipe, data, run_paths("demo", name, seed))
        weights.append(torch.load(run_paths("demo", name, seed).model_dir / BEST, weights_only=True))
    convolution = next(key for key in weights[0] if key.endswith("weight"))
    assert torch.equal(weights[0][convolution], weights[1][convolution])
    assert not torch.equal(weights[0][convolution], weights[2][convolution])


def test_evaluation_refuses_a_run_that_did_not_finish(tmp_path, monkeypatch):
    """A killed run leaves metrics.json with "complete": false (its last epoch's figures, for
    DVC's live view); evaluating it would publish those as a result."""
    images, targets = multilabel_arrays(count=60)
    folder = write_prepared(tmp_path / "prepared", images, targets, ["a", "b", "c", "d"])
    run_recipe(tmp_path, monkeypatch, "done", {"method": "logreg", "C": 0.1}, folder)
    paths = run_paths("demo", "done", 0)
    log = json.loads((paths.log_dir / "metrics.json").read_text())
    assert log["complete"] is True
    (paths.log_dir / "metrics.json").write_text(json.dumps({**log, "complete": False}))  # as a killed run leaves it
    recipe = _recipe("done", {"train": TRAIN_DEFAULTS, "sklearn": {}}, {"method": "logreg", "C": 0.1})
    with pytest.raises(UserError, match="did not finish.*complete: false.*rerun its train stage"):
        evaluate_recipe(recipe, load_prepared("demo", folder=folder), EvaluateConfig(timing_repeats=1),
                        paths.model_dir, paths.log_dir, tmp_path / "reports/eval/demo/done2")
    assert not (tmp_path / "reports/eval/demo/done2").exists()


def test_a_recipe_with_test_time_augmentation_is_also_scored_without_it(tmp_path, monkeypatch):
    """Its metrics hold accuracy and macro F1 of the same weights on the plain test images: what
    a study needs to tell the augmentation's share of a gain from the training's."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    images = np.stack([class_image(int(label), rng, 16).transpose(2, 0, 1) for label in labels])
    folder = write_prepared(tmp_path / "prepared", images, labels, ["a", "b", "c"])
    spec = {**CNN, "epochs": 2, "tta": "hflip"}
    mirrored = run_recipe(tmp_path, monkeypatch, "mirrored", spec, folder)
    paths = run_paths("demo", "mirrored", 0)
    recipe = _recipe("mirrored", {"train": TRAIN_DEFAULTS, "sklearn": {}}, {**spec, "tta": "none"})
    plain = evaluate_recipe(recipe, load_prepared("demo", folder=folder), EvaluateConfig(timing_repeats=1),
                            paths.model_dir, paths.log_dir, tmp_path / "reports/eval/demo/plain")
    assert "accuracy_without_tta" not in plain
    assert (mirrored["accuracy_without_tta"], mirrored["macro_f1_without_tta"]) == (plain["accuracy"], plain["macro_f1"])


def test_a_test_size_scale_scores_larger_test_images_and_the_training_size_too(tmp_path, monkeypatch):
    """evaluate.test_size_scale 1.5 on 16 px images: the model's stem sees 24 px test images,
    the metrics name both sides, and the figures at the training side are a plain evaluation's.
    A recipe that sees one size only (logreg) is evaluated as it trained, and says no test size."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    images = np.stack([class_image(int(label), rng, 16).transpose(2, 0, 1) for label in labels])
    folder = write_prepared(tmp_path / "prepared", images, labels, ["a", "b", "c"])
    plain = run_recipe(tmp_path, monkeypatch, "cnn", {**CNN, "epochs": 2}, folder)
    paths, data = run_paths("demo", "cnn", 0), load_prepared("demo", folder=folder)
    recipe = _recipe("cnn", {"train": TRAIN_DEFAULTS, "sklearn": {}}, {**CNN, "epochs": 2})
    larger = evaluate_recipe(recipe, data, EvaluateConfig(timing_repeats=1, test_size_scale=1.5),
                             paths.model_dir, paths.log_dir, tmp_path / "reports/eval/demo/larger")
    assert (larger["train_size"], larger["test_size"]) == (16, 24) and "test_size" not in plain
    assert (larger["accuracy_at_train_size"], larger["macro_f1_at_train_size"]) == (plain["accuracy"], plain["macro_f1"])
    confidence = {name: pd.read_csv(tmp_path / f"reports/eval/demo/{name}/predictions.csv")["confidence"]
                  for name in ("cnn", "larger")}
    assert not np.allclose(confidence["cnn"], confidence["larger"])  # another input size, other outputs

    logreg = run_recipe(tmp_path, monkeypatch, "logreg", {"method": "logreg", "C": 0.1}, folder)
    paths = run_paths("demo", "logreg", 0)
    recipe = _recipe("logreg", {"train": TRAIN_DEFAULTS, "sklearn": {}}, {"method": "logreg", "C": 0.1})
    one_size = evaluate_recipe(recipe, data, EvaluateConfig(timing_repeats=1, test_size_scale=1.5),
                               paths.model_dir, paths.log_dir, tmp_path / "reports/eval/demo/logreg_larger")
    assert "test_size" not in one_size and one_size["accuracy"] == logreg["accuracy"]  # it sees one size only
