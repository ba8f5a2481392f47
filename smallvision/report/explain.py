"""Visual explanations: Grad-CAM overlays (pytorch-grad-cam) for the best CNN-type recipe."""

from __future__ import annotations

import numpy as np
import torch

from smallvision.options.params import TorchRecipe


def spatial_recipes(results, params, dataset: str) -> list[str]:
    """Torch arms whose backbone keeps a spatial feature map, best on validation first."""
    return [name for name in results.by_validation(dataset)
            if isinstance(recipe := params.arm_recipe(dataset, name), TorchRecipe) and recipe.model.backbone.name != "flatten"]


def gradcam_maps(model, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM of each image for its predicted class, on the backbone's last feature map.
    Returns (maps in [0, 1] at the image size, predicted class indices)."""
    from pytorch_grad_cam import GradCAM

    model.eval()
    x = torch.as_tensor(images).float().div(255).requires_grad_(True)  # frozen backbones need a graph
    with torch.no_grad():
        predicted = model(x).argmax(1).numpy()
    with GradCAM(model=model, target_layers=[model.backbone]) as cam:
        maps = cam(input_tensor=x, targets=None)
    return maps, predicted


def overlays(images: np.ndarray, maps: np.ndarray) -> list[np.ndarray]:
    from pytorch_grad_cam.utils.image import show_cam_on_image

    out = []
    for image, heat in zip(images, maps):
        rgb = image.transpose(1, 2, 0).astype(np.float32) / 255
        if rgb.shape[-1] == 1:
            rgb = np.repeat(rgb, 3, axis=-1)
        out.append(show_cam_on_image(rgb, heat, use_rgb=True, image_weight=0.55))
    return out
