"""The fit functions of the torch-based recipe methods (torch, knn); smallvision.recipes
registers them with their options (METHODS) and smallvision.train.logreg holds logreg's."""

from __future__ import annotations

import time

from smallvision.data.prepared import PreparedData
from smallvision.io import atomic_file, write_json
from smallvision.paths import RunPaths
from smallvision.recipes import METHODS  # noqa: F401  (re-exported: stages/train.py imports it from here)
from smallvision.train.log import TrainLog


def fit_torch(recipe, data: PreparedData, paths: RunPaths) -> dict:
    from smallvision.train.loop import train_torch

    return train_torch(recipe, data, paths)


def fit_knn(recipe, data: PreparedData, paths: RunPaths) -> dict:
    """Fine-tune first if the recipe says so; otherwise keep the backbone as it is. kNN itself
    needs no training: evaluation embeds the training split as its index."""
    if recipe.finetune:
        return fit_torch(recipe, data, paths)
    import torch

    from smallvision.models.classifier import parameter_count
    from smallvision.models.build import build_for_data
    from smallvision.train.device import seed_everything
    from smallvision.train.resumable import BEST

    start = time.perf_counter()
    seed_everything(recipe.seed)  # a randomly initialised backbone's weights are its seed's
    model = build_for_data(recipe, data)
    paths.model_dir.mkdir(parents=True, exist_ok=True)
    paths.log_dir.mkdir(parents=True, exist_ok=True)
    with atomic_file(paths.model_dir / BEST, "wb") as handle:
        torch.save(model.state_dict(), handle)
    record = knn_record(recipe, data, paths)
    summary = {"train_seconds": round(time.perf_counter() - start, 3), "epochs_run": 0, **parameter_count(model),
               "final": record}
    write_json(paths.log_dir / "train.json", summary)
    TrainLog(paths.log_dir).finish(record)  # last: metrics.json says complete once the results are written
    return summary


def knn_record(recipe, data: PreparedData, paths: RunPaths) -> dict:
    """The one "epoch" of a kNN recipe: its index size and its validation accuracy at the k that
    validation picks (as evaluation does)."""
    from smallvision.inference import KnnPredictor
    from smallvision.metrics import accuracy
    from smallvision.train.resumable import BEST

    record = {"epoch": 1, "index_images": len(data["train"])}
    if len(data["val"]):
        predictor = KnnPredictor(recipe, data, paths.model_dir / BEST)
        by_k = predictor.select_k(data["val"].images, data["val"].labels,
                                  lambda truth, scores: accuracy(truth, scores, data.multilabel))
        record["val_accuracy"] = by_k[predictor.k]
    return record
