"""Frozen-feature diagnostics: kNN accuracy and the spread of normalised embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from smallvision.train.device import to_float_images

QUERY_CHUNK = 1024  # queries per similarity matrix (memory stays small on any bank)


@torch.no_grad()
def embed_images(embed, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Features of uint8 images (N, C, H, W), a batch at a time."""
    chunks = [embed(to_float_images(images[i:i + batch_size])).float() for i in range(0, len(images), batch_size)]
    return torch.cat(chunks)


@torch.no_grad()
def knn_accuracies(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor,
                   query_labels: torch.Tensor, num_classes: int, ks: list[int], temperature: float) -> dict:
    """{'knn<k>_accuracy': ...} for every k: lightly's knn_predict on cosine similarity."""
    from lightly.utils.benchmarking.knn import knn_predict

    bank_t = F.normalize(bank, dim=1).t().contiguous()
    queries = F.normalize(queries, dim=1)
    results = {}
    for k in ks:
        predicted = torch.cat([
            knn_predict(chunk, bank_t, bank_labels, num_classes, knn_k=min(k, bank_t.shape[1]),
                        knn_t=temperature)[:, 0]
            for chunk in queries.split(QUERY_CHUNK)
        ])
        results[f"knn{k}_accuracy"] = (predicted == query_labels).float().mean().item()
    return results


def embedding_spread(features: torch.Tensor) -> float:
    """Per-dimension standard deviation of L2-normalised features, times sqrt(dim) (SimSiam's
    collapse check): near 0 when every image maps to one point, larger as they spread out."""
    normalised = F.normalize(features.float(), dim=1)
    return (normalised.std(0).mean() * features.shape[1] ** 0.5).item()
