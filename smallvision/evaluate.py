"""Evaluate one trained recipe on its dataset's test split.

reports/eval/<dataset>/<recipe>/
  metrics.json      scalar metrics, train seconds, parameters, inference images/s
  per_class.csv     precision, recall, F1 and support per class
  confusion.json    the confusion matrix (rows: true class, columns: predicted)
  predictions.csv   one row per test image: file, actual, predicted, confidence, top-k
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from smallvision.config import EvaluateConfig
from smallvision.data.prepared import PreparedData
from smallvision.inference import load_predictor
from smallvision.io import atomic_dir, read_json, write_json
from smallvision.metrics import classification_metrics, confusion, per_class_table
from smallvision.paths import train_log_dir
from smallvision.progress import log


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
    return pd.DataFrame({
        "file": data.files["test"],
        "actual": names[truth],
        "predicted": names[scores.argmax(1)],
        "correct": scores.argmax(1) == truth,
        "confidence": scores.max(1).round(5),
        f"top{top_k}": [" | ".join(names[row]) for row in order],
    })


def evaluate_recipe(dataset: str, recipe_name: str, recipe, data: PreparedData, cfg: EvaluateConfig,
                    out_dir: Path) -> dict:
    predictor = load_predictor(dataset, recipe_name, recipe, data)
    test = data["test"]
    scores, images_per_second = timed_scores(predictor, test.images, cfg)
    metrics = classification_metrics(test.labels, scores, cfg.top_k)
    train = read_json(train_log_dir(dataset, recipe_name) / "train.json")
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
    log(f"{dataset}/{recipe_name}: accuracy {metrics['accuracy']:.4f}  macro F1 {metrics['macro_f1']:.4f}  "
        f"balanced {metrics['balanced_accuracy']:.4f}  ({images_per_second:.0f} images/s)")
    return metrics
