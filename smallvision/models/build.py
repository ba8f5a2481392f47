"""The recipe's model for a prepared dataset: normalised with the training split's statistics,
a whitening stem fitted to a fixed sample of its images."""

from __future__ import annotations

import numpy as np
import torch

from smallvision.core.prepared import PreparedData
from smallvision.models.classifier import Classifier, build_model
from smallvision.models.device import to_float_images
from smallvision.options.params import TorchRecipe


def dataset_statistics(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images, in [0, 1] units."""
    values = images.reshape(images.shape[0], images.shape[1], -1).astype(np.float64) / 255
    mean = values.mean(axis=(0, 2))
    std = values.std(axis=(0, 2)).clip(min=1e-3)
    return mean.tolist(), std.tolist()


def build_for_data(recipe: TorchRecipe, data: PreparedData, statistics: bool = True) -> Classifier:
    """The recipe's model for this data. Without `statistics` the normalisation buffers (and a
    whitening stem) are placeholders, for a model whose saved weights are loaded next; a backbone
    loaded from `backbone_init` keeps the stem it was saved with."""
    if statistics:
        mean, std = dataset_statistics(data["train"].images)
    else:
        mean, std = [0.5] * data.channels, [0.25] * data.channels
    model = build_model(recipe.model, data.channels, data.image_size, data.num_classes,
                        input_size=recipe.input_size, dataset_mean=mean, dataset_std=std, dataset=data.name)
    if statistics and model.whitening_stem is not None and not recipe.model.backbone_init:
        side = recipe.input_size or data.image_size  # the stem sees images resized to this
        sample = to_float_images(torch.as_tensor(fitting_sample(data["train"].images, side)))
        model.whitening_stem.fit(model.preprocess(sample))
    return model


def fitting_sample(images: np.ndarray, side: int, pixels: int = 5000 * 32 * 32) -> np.ndarray:
    """A fixed random pick of training images (prepare stores them by class), as many as make
    `pixels` pixels at the model's input side (5,000 at 32 px, as airbench): what a whitening
    stem is fitted to."""
    count = min(len(images), max(1, pixels // side ** 2))
    return images[np.sort(np.random.default_rng(0).choice(len(images), count, replace=False))]
