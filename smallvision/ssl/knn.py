"""Frozen-feature diagnostics: kNN accuracy and the spread of normalised embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from smallvision.retrieval import knn_scores
from smallvision.train.device import to_float_images


@torch.no_grad()
def embed_images(embed, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Features of uint8 images (N, C, H, W), a batch at a time."""
    chunks = [embed(to_float_images(images[i:i + batch_size])).float() for i in range(0, len(images), batch_size)]
    return torch.cat(chunks)


def knn_accuracies(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor,
                   query_labels: torch.Tensor, num_classes: int, ks: list[int]) -> dict:
    """{'knn<k>_accuracy': ...} for every k: cosine kNN votes, as the retrieval recipes count them."""
    truth = query_labels.cpu().numpy()
    predicted = {k: knn_scores(bank, bank_labels, queries, k, num_classes).argmax(1) for k in ks}
    return {f"knn{k}_accuracy": float((predicted[k] == truth).mean()) for k in ks}


def embedding_spread(features: torch.Tensor) -> float:
    """Per-dimension standard deviation of L2-normalised features, times sqrt(dim) (SimSiam's
    collapse check): near 0 when every image maps to one point, larger as they spread out."""
    normalised = F.normalize(features.float(), dim=1)
    return (normalised.std(0).mean() * features.shape[1] ** 0.5).item()
