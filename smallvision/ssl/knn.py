"""Frozen-feature diagnostics: kNN accuracy, the spread of normalised embeddings and their effective rank."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from smallvision.models.device import to_float_images
from smallvision.models.metrics import predicted_labels
from smallvision.models.retrieval import knn_scores


@torch.no_grad()
def embed_images(embed, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Features of uint8 images (N, C, H, W), a batch at a time."""
    chunks = [embed(to_float_images(images[i:i + batch_size])).float() for i in range(0, len(images), batch_size)]
    return torch.cat(chunks)


def knn_accuracies(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, truth: np.ndarray,
                   num_classes: int, ks: list[int]) -> dict:
    """{'knn<k>_accuracy': ...} for every k: cosine kNN votes, counted as the `knn` recipes
    count them (multi-label: the exact label set, each label voted by half the neighbours)."""
    multilabel = truth.ndim == 2
    accuracies = {}
    for k in ks:
        predicted = predicted_labels(knn_scores(bank, bank_labels, queries, k, num_classes), multilabel)
        correct = (predicted == truth).all(1) if multilabel else predicted == truth
        accuracies[f"knn{k}_accuracy"] = float(correct.mean())
    return accuracies


def embedding_spread(features: torch.Tensor) -> float:
    """Per-dimension standard deviation of L2-normalised features, times sqrt(dim) (SimSiam's
    collapse check): near 0 when every image maps to one point, larger as they spread out."""
    normalised = F.normalize(features.float(), dim=1)
    return (normalised.std(0).mean() * features.shape[1] ** 0.5).item()


def effective_rank(features: torch.Tensor) -> float:
    """About how many directions the images' features vary along: exp of the entropy of the
    singular values of the centred features, as shares of their sum (RankMe, Garrido et al.
    2023). 1 when they vary along one direction, up to the feature size; 0 when they do not vary.
    A fall during pretraining is dimensional collapse, which the spread misses: on Pokémon-150
    BYOL and SimSiam kept their spread while their rank fell to a third (docs/ssl.md)."""
    centred = features.detach().cpu().double()
    centred = centred - centred.mean(0)
    values = torch.linalg.svdvals(centred)
    if values.sum() <= 0:
        return 0.0
    shares = values / values.sum()
    shares = shares[shares > 0]
    return float(torch.exp(-(shares * shares.log()).sum()))
