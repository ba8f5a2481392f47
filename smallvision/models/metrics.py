"""Classification metrics from predicted class probabilities (scikit-learn).

scikit-learn is imported inside the functions that use it: its import takes over a second, and
the train and pretrain stages, a process each, need only `accuracy` (numpy)."""

from __future__ import annotations

import numpy as np


def classification_metrics(truth: np.ndarray, scores: np.ndarray, top_k: int = 5) -> dict:
    """Scalar metrics for single-label classification; `scores` are (N, K) probabilities."""
    from sklearn import metrics as skm

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


def multilabel_metrics(truth: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict:
    """Multilabel: `truth` and the thresholded `scores` are (N, K) 0/1 matrices."""
    from sklearn import metrics as skm

    truth = truth.astype(int)
    predicted = (scores >= threshold).astype(int)
    per_label = skm.multilabel_confusion_matrix(truth, predicted)  # (K, 2, 2): [[tn, fp], [fn, tp]]
    tn, fp, fn, tp = (per_label[:, i, j].astype(float) for i, j in ((0, 0), (0, 1), (1, 0), (1, 1)))
    present = (tp + fn) > 0
    tpr = np.divide(tp, tp + fn, out=np.zeros_like(tp), where=present)
    tnr = np.divide(tn, tn + fp, out=np.ones_like(tn), where=(tn + fp) > 0)
    out = {
        "accuracy": float(skm.accuracy_score(truth, predicted)),  # subset accuracy: the exact label set
        "binary_accuracy": float(1 - skm.hamming_loss(truth, predicted)),
        "hamming_loss": float(skm.hamming_loss(truth, predicted)),
        "balanced_accuracy": float(((tpr + tnr) / 2)[present].mean()),
        "micro_f1": float(skm.f1_score(truth, predicted, average="micro", zero_division=0)),
        "macro_f1": float(skm.f1_score(truth, predicted, average="macro", zero_division=0)),
        "macro_precision": float(skm.precision_score(truth, predicted, average="macro", zero_division=0)),
        "macro_recall": float(skm.recall_score(truth, predicted, average="macro", zero_division=0)),
        "micro_recall": float(skm.recall_score(truth, predicted, average="micro", zero_division=0)),
        "macro_tpr": float(tpr[present].mean()),
        "macro_tnr": float(tnr[present].mean()),
        "macro_fpr": float(1 - tnr[present].mean()),
        "macro_fnr": float(1 - tpr[present].mean()),
    }
    aucs = [skm.roc_auc_score(truth[:, k], scores[:, k]) for k in range(truth.shape[1])
            if 0 < truth[:, k].sum() < len(truth)]
    out["roc_auc_ovr"] = float(np.mean(aucs)) if aucs else None
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
    from sklearn import metrics as skm

    aucs = []
    for label in np.unique(truth):
        positives = truth == label
        if positives.all():
            continue
        aucs.append(skm.roc_auc_score(positives, scores[:, label]))
    return float(np.mean(aucs)) if aucs else None


def predicted_labels(scores: np.ndarray, multilabel: bool, threshold: float = 0.5) -> np.ndarray:
    return (scores >= threshold).astype(int) if multilabel else scores.argmax(1)


def accuracy(truth: np.ndarray, scores: np.ndarray, multilabel: bool) -> float:
    """Accuracy; multilabel: subset accuracy (every label of an image right)."""
    right = predicted_labels(scores, multilabel) == truth
    return float((right.all(1) if multilabel else right).mean())


def per_class_table(truth: np.ndarray, scores: np.ndarray, class_names: list[str]):
    """Precision, recall, F1 and support per class (per label for multilabel targets)."""
    import pandas as pd
    from sklearn import metrics as skm

    multilabel = truth.ndim == 2
    predicted = predicted_labels(scores, multilabel)
    classes = None if multilabel else np.arange(len(class_names))
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        truth.astype(int) if multilabel else truth, predicted, labels=classes, zero_division=0
    )
    return pd.DataFrame(
        {"class": class_names, "precision": precision, "recall": recall, "f1": f1, "support": support}
    )


def confusion(truth: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(K, K) for single-label; for multilabel, label co-occurrence of truth (rows) with
    predictions (columns): cell (i, j) counts images labelled i that were predicted j."""
    from sklearn import metrics as skm

    if truth.ndim == 2:
        return truth.astype(int).T @ predicted_labels(scores, True)
    return skm.confusion_matrix(truth, scores.argmax(1), labels=np.arange(scores.shape[1]))
