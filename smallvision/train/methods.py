"""The fit function of every recipe method, registered against the method's name (its options:
smallvision.options.recipes): torch and knn here, the majority baseline, and logreg's in
smallvision.train.logreg. `fit` trains any recipe."""

from __future__ import annotations

import json
import time

from smallvision.core.io import checked_file, write_json
from smallvision.core.paths import RunPaths
from smallvision.core.prepared import PreparedData
from smallvision.fit.log import TrainLog
from smallvision.options.recipes import METHODS
from smallvision.train import logreg  # noqa: F401  (registers logreg's fit)


def fit(recipe, data: PreparedData, paths: RunPaths) -> dict | None:
    """Train `recipe` (any method) on prepared `data`, writing under `paths`."""
    return METHODS.implementation(recipe.method)(recipe, data, paths)


@METHODS.implement("torch")
def fit_torch(recipe, data: PreparedData, paths: RunPaths) -> dict:
    from smallvision.train.loop import train_torch

    return train_torch(recipe, data, paths)


@METHODS.implement("knn")
def fit_knn(recipe, data: PreparedData, paths: RunPaths) -> dict:
    """Fine-tune first if the recipe says so; otherwise keep the backbone as it is. kNN itself
    needs no training: evaluation embeds the training split as its index."""
    if recipe.finetune:
        return fit_torch(recipe, data, paths)
    from smallvision.core.paths import BEST
    from smallvision.models.build import build_for_data
    from smallvision.models.classifier import parameter_count
    from smallvision.models.device import seed_everything
    from smallvision.models.weights import save_weights

    start = time.perf_counter()
    seed_everything(recipe.seed)  # a randomly initialised backbone's weights are its seed's
    model = build_for_data(recipe, data)
    paths.model_dir.mkdir(parents=True, exist_ok=True)
    paths.log_dir.mkdir(parents=True, exist_ok=True)
    save_weights(model.state_dict(), paths.model_dir / BEST)
    record = knn_record(recipe, data, paths)
    summary = {"train_seconds": round(time.perf_counter() - start, 3), "epochs_run": 0, **parameter_count(model),
               "final": record}
    write_json(paths.log_dir / "train.json", summary)
    TrainLog(paths.log_dir).finish(record)  # last: metrics.json says complete once the results are written
    return summary


def knn_record(recipe, data: PreparedData, paths: RunPaths) -> dict:
    """The one "epoch" of a kNN recipe: its index size and its validation accuracy at the k that
    validation picks (as evaluation does)."""
    from smallvision.core.paths import BEST
    from smallvision.inference import KnnPredictor
    from smallvision.models.metrics import accuracy

    record = {"epoch": 1, "index_images": len(data["train"])}
    if len(data["val"]):
        predictor = KnnPredictor(recipe, data, paths.model_dir / BEST)
        by_k = predictor.select_k(data["val"].images, data["val"].labels,
                                  lambda truth, scores: accuracy(truth, scores, data.multilabel))
        record["val_accuracy"] = by_k[predictor.k]
    return record


@METHODS.implement("majority")
def fit_majority(recipe, data: PreparedData, paths: RunPaths) -> dict:
    """The training split's label shares (class frequencies, or each label's share of the images)."""
    import numpy as np

    from smallvision.inference import MAJORITY_FILE, MajorityPredictor
    from smallvision.models.metrics import accuracy

    start = time.perf_counter()
    labels = data["train"].labels
    shares = labels.mean(0) if data.multilabel else np.bincount(labels, minlength=data.num_classes) / len(labels)
    paths.model_dir.mkdir(parents=True, exist_ok=True)
    paths.log_dir.mkdir(parents=True, exist_ok=True)
    with checked_file(paths.model_dir / MAJORITY_FILE, "w") as handle:  # read back as weights are
        json.dump({"shares": [float(share) for share in shares]}, handle, indent=2)
    predictor = MajorityPredictor(recipe, data, paths.model_dir / MAJORITY_FILE)
    record = {"epoch": 1}
    for split in ("train", "val"):
        if len(data[split]):
            record[f"{split}_accuracy"] = accuracy(data[split].labels, predictor.scores(data[split].images),
                                                   data.multilabel)
    summary = {"train_seconds": round(time.perf_counter() - start, 3), "epochs_run": 0, "parameters": 0,
               "trainable_parameters": 0, "final": record}
    write_json(paths.log_dir / "train.json", summary)
    TrainLog(paths.log_dir).finish(record)  # last: metrics.json says complete once the results are written
    return summary
