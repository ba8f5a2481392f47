"""k-nearest-neighbour classification on embeddings (retrieval)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def knn_scores(index: torch.Tensor, index_labels: torch.Tensor, queries: torch.Tensor, k: int,
               num_classes: int, metric: str = "cosine", chunk: int = 1024) -> np.ndarray:
    """Per-class vote shares of each query's k nearest index embeddings, shape (N, K).

    Single-label: the share of neighbours in each class (ties go to the nearer neighbours:
    each vote adds a tiny amount proportional to its similarity). Multilabel (0/1 label
    vectors): the share of neighbours carrying each label."""
    k = min(k, len(index))
    if metric == "cosine":
        index, queries = F.normalize(index.float(), dim=1), F.normalize(queries.float(), dim=1)
    targets = index_labels.float() if index_labels.ndim == 2 else F.one_hot(index_labels, num_classes).float()
    out = []
    for start in range(0, len(queries), chunk):
        batch = queries[start:start + chunk].float()
        similarity = batch @ index.T if metric == "cosine" else -torch.cdist(batch, index.float())
        top, neighbours = similarity.topk(k, dim=1)
        votes = targets[neighbours]  # (n, k, K)
        weights = 1 + 1e-4 * (top - top.min(dim=1, keepdim=True).values).unsqueeze(-1)
        out.append(((votes * weights).sum(1) / weights.sum(1)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, num_classes), np.float32)
