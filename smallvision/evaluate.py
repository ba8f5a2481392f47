"""Evaluate one trained run (recipe, dataset, seed) on its dataset's test split.

reports/eval/<dataset>/<recipe>/s<seed>/
  metrics.json      scalar metrics of the test split; val_accuracy and val_macro_f1, the same
                    weights' figures on the validation split (what a "best" is chosen by, never
                    the test split's); with test-time augmentation or a test size other than the
                    training size, accuracy and macro F1 without it; train seconds, parameters,
                    inference images/s
  per_class.csv     precision, recall, F1 and support per class
  confusion.json    the confusion matrix (rows: true class, columns: predicted)
  predictions.csv   one row per test image: file, actual, predicted, confidence, top-k
"""

from __future__ import annotations

import time
from copy import copy
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from smallvision.core.errors import UserError
from smallvision.core.io import atomic_dir, read_json, write_json
from smallvision.core.paths import run_complete
from smallvision.core.prepared import PreparedData
from smallvision.core.progress import log
from smallvision.inference import KnnPredictor, TorchPredictor, load_predictor, plain
from smallvision.models.metrics import (
    accuracy,
    classification_metrics,
    confusion,
    multilabel_metrics,
    per_class_table,
    predicted_labels,
)
from smallvision.options.params import EvaluateConfig


def timed_scores(predictor, images: np.ndarray, cfg: EvaluateConfig) -> tuple[np.ndarray, float]:
    """Scores of the test set, and inference images/s (best of `timing_repeats` passes)."""
    best = float("inf")
    for _ in range(cfg.timing_repeats):
        start = time.perf_counter()
        scores = predictor.scores(images, cfg.batch_size)
        best = min(best, time.perf_counter() - start)
    return scores, len(images) / max(best, 1e-9)


def predictions_table(data: PreparedData, scores: np.ndarray, top_k: int) -> pd.DataFrame:
    names = np.asarray(data.classes)
    truth = data["test"].labels
    order = np.argsort(-scores, axis=1)[:, :top_k]
    if data.multilabel:  # label sets as "Grass|Poison"; confidence of the weakest decision
        predicted = predicted_labels(scores, True)
        actual = ["|".join(names[row.astype(bool)]) for row in truth]
        shown = ["|".join(names[row.astype(bool)]) for row in predicted]
        correct = (predicted == truth).all(1)
        confidence = np.abs(scores - 0.5).min(1) + 0.5
    else:
        actual, shown = names[truth], names[scores.argmax(1)]
        correct, confidence = scores.argmax(1) == truth, scores.max(1)
    return pd.DataFrame({
        "file": data.files["test"],
        "actual": actual,
        "predicted": shown,
        "correct": correct,
        "confidence": np.round(confidence, 5),
        f"top{top_k}": [" | ".join(names[row]) for row in order],
    })


def rescored(predictor, test, score, batch_size: int, suffix: str, **setting) -> dict:
    """Accuracy and macro F1 of the same weights with one test-time setting undone (`setting`: the
    predictor's attribute and the value that undoes it), as `<metric>_<suffix>`: what lets a study
    tell that setting's share of a figure from the training's, seed by seed. One more pass."""
    variant = copy(predictor)  # shares the model; only the test-time setting differs
    for name, value in setting.items():
        setattr(variant, name, value)
    figures = score(test.labels, variant.scores(test.images, batch_size))
    return {f"{name}_{suffix}": figures[name] for name in ("accuracy", "macro_f1") if name in figures}


def test_time_shares(predictor, test, score, batch_size: int) -> dict:
    """The figures without test-time augmentation, and at the training size, where the evaluation used them."""
    shares = {}
    if getattr(predictor, "tta", plain) is not plain:
        shares |= rescored(predictor, test, score, batch_size, "without_tta", tta=plain)
    if getattr(predictor, "test_size", None):
        shares |= rescored(predictor, test, score, batch_size, "at_train_size", test_size=None)
    return shares


def validation_figures(predictor, data: PreparedData, score, batch_size: int) -> dict:
    """Accuracy and macro F1 of the validation split, scored as the test split is: what chooses an
    arm among several (none without a validation split, e.g. a run on train + val)."""
    val = data["val"]
    if not len(val):
        return {}
    figures = score(val.labels, predictor.scores(val.images, batch_size))
    return {f"val_{name}": figures[name] for name in ("accuracy", "macro_f1") if name in figures}


def retrieval_figures(predictor, data: PreparedData, ks: list[int], batch_size: int) -> dict:
    """The Cars report's image retrieval on a trained classifier: each test image classified by
    its k nearest training images on the model's pooled features (its head left off), by
    Euclidean distance (the report's) and by cosine similarity, for every k in `ks`."""
    if not ks or not isinstance(predictor, TorchPredictor) or data.multilabel:
        return {}
    import torch

    from smallvision.models.retrieval import knn_scores

    index = torch.as_tensor(predictor.embeddings(data["train"].images, batch_size))
    queries = torch.as_tensor(predictor.embeddings(data["test"].images, batch_size))
    labels = torch.as_tensor(data["train"].labels)
    figures = {}
    for metric in ("euclidean", "cosine"):
        for k in ks:
            scores = knn_scores(index, labels, queries, k, data.num_classes, metric)
            figures[f"retrieval_{metric}_k{k}_accuracy"] = accuracy(data["test"].labels, scores, False)
    return figures


def knn_per_k(predictor: KnnPredictor, data: PreparedData, score) -> dict:
    """Test metrics for every k, and the k chosen on the validation split for the headline."""
    out = {}
    if len(data["val"]):
        val = predictor.select_k(data["val"].images, data["val"].labels, lambda y, s: score(y, s)["accuracy"])
        out.update({f"k{k}_val_accuracy": v for k, v in val.items()})
    for k in predictor.recipe.ks:
        test = score(data["test"].labels, predictor.scores(data["test"].images, k=k))
        for name in ("accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1"):
            out[f"k{k}_{name}"] = test[name]
    out["k"] = predictor.k
    return out


def evaluate_recipe(recipe, data: PreparedData, cfg: EvaluateConfig, model_folder: Path, train_log: Path,
                    out_dir: Path) -> dict:
    """Test metrics of the run whose model is in `model_folder` and whose train.json is in `train_log`."""
    if not run_complete(train_log):
        raise UserError(f"{train_log}: the training run did not finish (its metrics.json says complete: false); "
                        "rerun its train stage (`dvc repro` resumes it)")
    predictor = load_predictor(recipe, data, model_folder, cfg.test_size_scale)
    test_size = getattr(predictor, "test_size", None)
    sizes = {"train_size": predictor.train_size, "test_size": test_size} if test_size else {}
    if cfg.test_size_scale != 1 and not test_size:
        log(f"{out_dir}: tested at its training size (evaluate.test_size_scale applies to torch classifiers "
            "that pool their features)")
    test = data["test"]
    score = multilabel_metrics if data.multilabel else partial(classification_metrics, top_k=cfg.top_k)
    extra = knn_per_k(predictor, data, score) if isinstance(predictor, KnnPredictor) else {}
    scores, images_per_second = timed_scores(predictor, test.images, cfg)
    metrics = {**score(test.labels, scores), **extra, **test_time_shares(predictor, test, score, cfg.batch_size), **sizes,
               **validation_figures(predictor, data, score, cfg.batch_size),
               **retrieval_figures(predictor, data, cfg.retrieval_ks, cfg.batch_size)}
    train = read_json(train_log / "train.json")
    metrics.update({
        "train_seconds": train["train_seconds"],
        "epochs": train.get("epochs_run"),
        "parameters": predictor.parameters,
        "inference_images_per_second": round(images_per_second, 1),
        "test_images": int(len(test)),
    })
    with atomic_dir(out_dir) as tmp:
        write_json(tmp / "metrics.json", metrics)
        per_class_table(test.labels, scores, data.classes).to_csv(tmp / "per_class.csv", index=False)
        write_json(tmp / "confusion.json", {"classes": data.classes, "matrix": confusion(test.labels, scores)})
        predictions_table(data, scores, cfg.top_k).to_csv(tmp / "predictions.csv", index=False)
    log(f"{out_dir}: accuracy {metrics['accuracy']:.4f}  macro F1 {metrics['macro_f1']:.4f}  "
        f"balanced {metrics['balanced_accuracy']:.4f}  ({images_per_second:.0f} images/s)")
    return metrics
