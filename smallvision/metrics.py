"""Classification metrics from predicted class probabilities (scikit-learn)."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def classification_metrics(truth: np.ndarray, scores: np.ndarray, top_k: int = 5) -> dict:
    """Scalar metrics for single-label classification; `scores` are (N, K) probabilities."""
    classes = np.arange(scores.shape[1])
    predicted = scores.argmax(1)
    confusion = skm.confusion_matrix(truth, predicted, labels=classes)
    precision, recall, f1, _ = skm.precision_recall_fscore_support(
        truth, predicted, labels=classes, average="macro", zero_division=0
    )
    out = {
        "accuracy": float(skm.accuracy_score(truth, predicted)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(truth, predicted)),
        "macro_precision": float(precision),
        "macro_recall": float(recall),
        "macro_f1": float(f1),
        **rates(confusion),
        "roc_auc_ovr": one_vs_rest_auc(truth, scores),
        "log_loss": float(skm.log_loss(truth, normalised(scores), labels=classes)),
    }
    if len(classes) > top_k:
        out[f"top{top_k}_accuracy"] = float(skm.top_k_accuracy_score(truth, scores, k=top_k, labels=classes))
    return out


def normalised(scores: np.ndarray) -> np.ndarray:
    """Probabilities clipped away from 0 and summing to 1 exactly (for log loss)."""
    clipped = np.clip(scores.astype(np.float64), 1e-7, 1)
    return clipped / clipped.sum(1, keepdims=True)


def rates(confusion: np.ndarray) -> dict:
    """Macro-averaged one-vs-rest true/false positive/negative rates."""
    tp = np.diag(confusion).astype(float)
    fn = confusion.sum(1) - tp
    fp = confusion.sum(0) - tp
    tn = confusion.sum() - tp - fn - fp
    present = (tp + fn) > 0  # a class with no test images has no recall to average
    tpr = np.divide(tp, tp + fn, out=np.zeros_like(tp), where=(tp + fn) > 0)
    tnr = np.divide(tn, tn + fp, out=np.ones_like(tn), where=(tn + fp) > 0)
    return {
        "macro_tpr": float(tpr[present].mean()),
        "macro_tnr": float(tnr[present].mean()),
        "macro_fpr": float(1 - tnr[present].mean()),
        "macro_fnr": float(1 - tpr[present].mean()),
    }


def one_vs_rest_auc(truth: np.ndarray, scores: np.ndarray) -> float | None:
    """Macro average of per-class ROC AUC over the classes present in the test set."""
    aucs = []
    for label in np.unique(truth):
        positives = truth == label
        if positives.all():
            continue
        aucs.append(skm.roc_auc_score(positives, scores[:, label]))
    return float(np.mean(aucs)) if aucs else None


def per_class_table(truth: np.ndarray, scores: np.ndarray, class_names: list[str]):
    import pandas as pd

    predicted = scores.argmax(1)
    classes = np.arange(len(class_names))
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        truth, predicted, labels=classes, zero_division=0
    )
    return pd.DataFrame(
        {"class": class_names, "precision": precision, "recall": recall, "f1": f1, "support": support}
    )


def confusion(truth: np.ndarray, scores: np.ndarray) -> np.ndarray:
    return skm.confusion_matrix(truth, scores.argmax(1), labels=np.arange(scores.shape[1]))
