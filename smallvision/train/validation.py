"""The figures an epoch is monitored by, computed on the device from the validation logits
(evaluation's full set of test metrics is smallvision.models.metrics, with scikit-learn)."""

from __future__ import annotations

import torch


def validation_metrics(logits: torch.Tensor, labels: torch.Tensor, loss_fn, num_classes: int,
                       multilabel: bool) -> dict:
    """Loss, accuracy (multilabel: the exact label set) and macro F1 of the validation split
    (the benchmark's peer computes its own with this too)."""
    loss = loss_fn(logits, labels)
    if multilabel:
        predicted, truth = (logits > 0).long(), (labels > 0.5).long()
        accuracy = (predicted == truth).all(1).float().mean()
    else:
        predicted, truth = logits.argmax(1), labels
        accuracy = (predicted == truth).float().mean()
    f1 = macro_f1(predicted, truth, num_classes)
    return {"val_loss": loss.item(), "val_accuracy": accuracy.item(), "val_macro_f1": f1.item()}


def macro_f1(predicted: torch.Tensor, truth: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Macro F1 on the device, as scikit-learn's f1_score(average="macro") counts it:
    single-label, over the classes that occur in the truth or the prediction; multilabel, over
    every label, one that is neither true nor predicted anywhere counting 0."""
    if truth.ndim == 2:  # multilabel 0/1 matrices: per-class counts down the columns
        tp = (predicted & truth).sum(0)
        fp = (predicted & (1 - truth)).sum(0)
        fn = ((1 - predicted) & truth).sum(0)
        counted = torch.ones_like(tp, dtype=torch.bool)
    else:
        counts = torch.bincount(truth * num_classes + predicted, minlength=num_classes ** 2)
        matrix = counts.view(num_classes, num_classes)
        tp = matrix.diag()
        fp, fn = matrix.sum(0) - tp, matrix.sum(1) - tp
        counted = (tp + fp + fn) > 0
    denominator = (2 * tp + fp + fn).float()
    f1 = torch.where(denominator > 0, 2 * tp.float() / denominator.clamp(min=1), torch.zeros_like(denominator))
    return f1[counted].mean() if counted.any() else torch.zeros((), device=truth.device)
