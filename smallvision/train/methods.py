"""Training methods keyed by a recipe's `method`: the torch loop, or scikit-learn."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from smallvision.data.prepared import PreparedData
from smallvision.io import atomic_file, write_json
from smallvision.paths import RunPaths
from smallvision.registry import Registry
from smallvision.train.log import TrainLog

METHODS: Registry[Callable] = Registry("method")
LOGREG_FILE = "logreg.npz"


@METHODS.register("torch")
def fit_torch(recipe, data: PreparedData, paths: RunPaths) -> dict:
    from smallvision.train.loop import train_torch

    return train_torch(recipe, data, paths)


@METHODS.register("knn")
def fit_knn(recipe, data: PreparedData, paths: RunPaths) -> dict:
    """Fine-tune first if the recipe says so; otherwise keep the backbone as it is. kNN itself
    needs no training: evaluation embeds the training split as its index."""
    if recipe.finetune:
        return fit_torch(recipe, data, paths)
    import torch

    from smallvision.models.classifier import parameter_count
    from smallvision.train.loop import BEST, LAST, build_for_data

    start = time.perf_counter()
    model = build_for_data(recipe, data)
    paths.model_dir.mkdir(parents=True, exist_ok=True)
    paths.log_dir.mkdir(parents=True, exist_ok=True)
    for name in (BEST, LAST):
        with atomic_file(paths.model_dir / name, "wb") as handle:
            torch.save(model.state_dict(), handle)
    TrainLog(paths.log_dir).epoch({"epoch": 1})
    summary = {"train_seconds": round(time.perf_counter() - start, 3), "epochs_run": 0, **parameter_count(model),
               "final": {}}
    write_json(paths.log_dir / "train.json", summary)
    return summary


def flat_pixels(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32) / 255


@METHODS.register("logreg")
def fit_logreg(recipe, data: PreparedData, paths: RunPaths) -> dict:
    """Multinomial logistic regression on pixels; saved as plain arrays (no pickle)."""
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    x = flat_pixels(data["train"].images)
    mean = x.mean(0) if recipe.standardize else np.zeros(x.shape[1], np.float32)
    scale = x.std(0).clip(min=1e-3) if recipe.standardize else np.ones(x.shape[1], np.float32)
    model = LogisticRegression(C=recipe.C, max_iter=recipe.max_iter, random_state=recipe.seed)
    model.fit((x - mean) / scale, data["train"].labels)
    seconds = time.perf_counter() - start
    paths.model_dir.mkdir(parents=True, exist_ok=True)
    paths.log_dir.mkdir(parents=True, exist_ok=True)
    with atomic_file(paths.model_dir / LOGREG_FILE, "wb") as handle:
        np.savez(handle, coef=model.coef_, intercept=model.intercept_, classes=model.classes_, mean=mean, scale=scale)
    val = data["val"]
    record = {"epoch": 1, "train_accuracy": float(model.score((x - mean) / scale, data["train"].labels))}
    if len(val):
        record["val_accuracy"] = float(model.score((flat_pixels(val.images) - mean) / scale, val.labels))
    TrainLog(paths.log_dir).epoch(record)
    summary = {
        "train_seconds": round(seconds, 3),
        "iterations": int(np.max(model.n_iter_)),
        "converged": bool(np.max(model.n_iter_) < recipe.max_iter),
        "parameters": int(model.coef_.size + model.intercept_.size),
        "trainable_parameters": int(model.coef_.size + model.intercept_.size),
        "final": record,
    }
    write_json(paths.log_dir / "train.json", summary)
    return summary
