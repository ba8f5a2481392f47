"""Logistic regression on pixels (recipe method `logreg`): its fit, with scikit-learn; the model is
saved as plain arrays (no pickle) that smallvision.inference's LogRegPredictor reads."""

from __future__ import annotations

import time

import numpy as np

from smallvision.core.io import checked_file, write_json
from smallvision.core.paths import RunPaths
from smallvision.core.prepared import PreparedData
from smallvision.fit.log import TrainLog
from smallvision.inference import LOGREG_FILE, flat_pixels, logreg_scores
from smallvision.models.metrics import accuracy
from smallvision.options.recipes import METHODS

# A label that is constant over the training split gets this logit (sigmoid ~ 1 - 2e-9) and no fit.
CONSTANT_LOGIT = 20.0


@METHODS.implement("logreg")
def fit_logreg(recipe, data: PreparedData, paths: RunPaths) -> dict:
    """Multinomial logistic regression on pixels (multilabel: one binary regression per label);
    saved as plain arrays (no pickle)."""
    start = time.perf_counter()
    train = data["train"]
    x = flat_pixels(train.images)
    mean = x.mean(0) if recipe.standardize else np.zeros(x.shape[1], np.float32)
    scale = x.std(0).clip(min=1e-3) if recipe.standardize else np.ones(x.shape[1], np.float32)
    fit = fit_per_label if data.multilabel else fit_multinomial
    coef, intercept, classes, iterations = fit(recipe, (x - mean) / scale, train.labels)
    saved = {"coef": coef, "intercept": intercept, "classes": classes, "mean": mean, "scale": scale,
             "multilabel": np.array(data.multilabel)}
    seconds = time.perf_counter() - start
    paths.model_dir.mkdir(parents=True, exist_ok=True)
    paths.log_dir.mkdir(parents=True, exist_ok=True)
    with checked_file(paths.model_dir / LOGREG_FILE) as handle:
        np.savez(handle, **saved)
    record = {"epoch": 1, "train_accuracy": logreg_accuracy(saved, train, data.num_classes)}
    if len(data["val"]):
        record["val_accuracy"] = logreg_accuracy(saved, data["val"], data.num_classes)
    summary = {
        "train_seconds": round(seconds, 3),
        "iterations": iterations,
        "converged": iterations < recipe.max_iter,
        "parameters": int(coef.size + intercept.size),
        "trainable_parameters": int(coef.size + intercept.size),
        "final": record,
    }
    write_json(paths.log_dir / "train.json", summary)
    TrainLog(paths.log_dir).finish(record)  # last: metrics.json says complete once the results are written
    return summary


def fit_multinomial(recipe, x: np.ndarray, labels: np.ndarray):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=recipe.C, max_iter=recipe.max_iter, random_state=recipe.seed).fit(x, labels)
    return model.coef_, model.intercept_, model.classes_, int(np.max(model.n_iter_))


def fit_per_label(recipe, x: np.ndarray, labels: np.ndarray):
    """One-vs-rest over the label columns of a multi-hot (N, K) target."""
    from sklearn.linear_model import LogisticRegression

    coefs, intercepts, iterations = [], [], [0]
    for column in labels.T:
        if column.min() == column.max():
            coefs.append(np.zeros(x.shape[1], np.float32))
            intercepts.append(CONSTANT_LOGIT if column[0] else -CONSTANT_LOGIT)
            continue
        model = LogisticRegression(C=recipe.C, max_iter=recipe.max_iter, random_state=recipe.seed).fit(x, column)
        coefs.append(model.coef_[0])
        intercepts.append(model.intercept_[0])
        iterations.append(int(np.max(model.n_iter_)))
    return np.stack(coefs), np.array(intercepts), np.arange(labels.shape[1]), max(iterations)


def logreg_accuracy(saved, split, num_classes: int) -> float:
    return accuracy(split.labels, logreg_scores(saved, split.images, num_classes), bool(saved["multilabel"]))
