"""Evaluate one pretrained backbone three ways on its dataset's test split (and, for choosing
among SSL arms, on its validation split).

kNN on frozen features; a linear probe (frozen backbone, features embedded once) and a full
fine-tune, both run by the one training loop as recipes whose `model.backbone_init` is the
pretrained file. Every evaluation loads the backbone the way any recipe would, so a backbone
that a fine-tune recipe cannot load fails here, at once.

reports/eval/ssl-<key>/metrics.json   knn<k>_accuracy, probe_*, finetune_* (and *_val_accuracy), pretraining figures
data/ssl_eval/<key>/{probe,finetune}   the two runs' weights and logs (key: <dataset>-<arm>-s<seed>, of ssl.runs)

The probe and the fine-tune train with the pretraining's seed.
"""

from __future__ import annotations

from pathlib import Path

import torch

from smallvision.core.io import atomic_dir, read_json, write_json
from smallvision.core.paths import BEST, RunPaths, pretrained_dir, ssl_evaluation_paths
from smallvision.core.prepared import PreparedData
from smallvision.core.progress import log
from smallvision.inference import TorchPredictor
from smallvision.models.build import build_for_data
from smallvision.models.device import resolve_device
from smallvision.models.metrics import classification_metrics, multilabel_metrics
from smallvision.ssl.config import BACKBONE_FILE, EVALUATIONS, KnnConfig, SSLParams
from smallvision.ssl.knn import embed_images, knn_accuracies
from smallvision.ssl.pretrain import SUMMARY
from smallvision.train.methods import fit


def evaluate_pretrained(key: str, ssl: SSLParams, data: PreparedData, top_k: int, out_dir: Path) -> dict:
    """SSL run `key`'s pretrained backbone on the test split: kNN, linear probe and fine-tune."""
    run = ssl.run(key)
    pretrained = pretrained_dir(run.dataset, run.arm, run.seed)
    backbone_init = str(pretrained / BACKBONE_FILE)
    recipe = ssl.run_recipe(key)
    pretraining = read_json(pretrained / SUMMARY)
    metrics = {"method": recipe.method, "backbone": recipe.backbone.name,
               "weights": getattr(recipe.backbone, "weights", "none"), "test_images": len(data["test"])}
    metrics.update(knn_test_accuracies(ssl.evaluation_recipe(key, "probe", backbone_init), data, ssl.evaluate.knn))
    for evaluation in EVALUATIONS:
        metrics.update(fit_and_test(evaluation, ssl.evaluation_recipe(key, evaluation, backbone_init), data,
                                    top_k, ssl_evaluation_paths(run.dataset, run.arm, run.seed, evaluation)))
    metrics.update(pretraining_figures(pretraining))
    with atomic_dir(out_dir) as tmp:
        write_json(tmp / "metrics.json", metrics)
    knn = ", ".join(f"kNN@{k} {metrics[f'knn{k}_accuracy']:.4f}" for k in ssl.evaluate.knn.k)
    log(f"{key}: {knn}, probe {metrics['probe_accuracy']:.4f}, fine-tune {metrics['finetune_accuracy']:.4f}")
    return metrics


@torch.no_grad()
def knn_test_accuracies(recipe, data: PreparedData, cfg: KnnConfig) -> dict:
    """Test images classified by their nearest training images, on the features the probe's
    model (pretrained backbone, average-pooled) computes."""
    device = resolve_device(recipe.device)
    model = build_for_data(recipe, data).to(device).eval()

    def features(split: str) -> torch.Tensor:
        return embed_images(model.embed, torch.as_tensor(data[split].images, device=device), recipe.eval_batch_size)

    bank, bank_labels = features("train"), torch.as_tensor(data["train"].labels, device=device)
    figures = knn_accuracies(bank, bank_labels, features("test"), data["test"].labels, data.num_classes, cfg.k)
    if len(data["val"]):  # what an SSL arm is chosen by, never the test split
        val = knn_accuracies(bank, bank_labels, features("val"), data["val"].labels, data.num_classes, cfg.k)
        figures |= {name.replace("_accuracy", "_val_accuracy"): value for name, value in val.items()}
    return figures


def fit_and_test(evaluation: str, recipe, data: PreparedData, top_k: int, paths: RunPaths) -> dict:
    summary = fit(recipe, data, paths)
    predictor = TorchPredictor(recipe, data, paths.model_dir / BEST)

    def score(split: str) -> dict:
        scores = predictor.scores(data[split].images, recipe.eval_batch_size)
        return multilabel_metrics(data[split].labels, scores) if data.multilabel else \
            classification_metrics(data[split].labels, scores, top_k)

    test = score("test")
    val = {f"{evaluation}_val_accuracy": score("val")["accuracy"]} if len(data["val"]) else {}
    return {**val, f"{evaluation}_accuracy": test["accuracy"], f"{evaluation}_macro_f1": test["macro_f1"],
            f"{evaluation}_seconds": summary["train_seconds"], f"{evaluation}_epochs": summary["epochs_run"]}


def pretraining_figures(summary: dict) -> dict:
    """What the report shows of the pretraining: its cost and the collapse diagnostics at the
    start (the backbone as initialised) and the end."""
    start, final = summary["start"], summary["final"]
    return {
        "pretrain_epochs": summary["epochs_run"],
        "pretrain_seconds": summary["pretrain_seconds"],
        "pretrain_images_per_second": summary["pretrain_images_per_second"],
        "embedding_spread_start": start["embedding_spread"],
        "embedding_spread": final["embedding_spread"],
        "embedding_rank_start": start.get("embedding_rank"),  # absent from a run resumed from older code
        "embedding_rank": final.get("embedding_rank"),
        "val_knn_accuracy_start": start.get("val_knn_accuracy"),
        "val_knn_accuracy": final.get("val_knn_accuracy"),
    }
