"""Derived datasets, made while decoding: objects pasted on photographs, silhouette crops.

Both are prepare options (`composite`, `silhouette_crop` of a dataset). The composite is
random but fixed by its seed, each image's position in the source and its copy number, so it does not
depend on how decoding is split across processes; the crop runs after it, on the
composited image, as it would on a real photograph."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageOps

from smallvision.core.errors import UserError
from smallvision.data.images import border_colour, is_image_file, to_mode
from smallvision.options.dataset import (
    SKLEARN_PHOTOS,
    CompositeConfig,
    SilhouetteCropConfig,
)

BACKGROUND_TOLERANCE = 30  # max channel difference from the border colour that still counts as background
BACKGROUND_CROP = (0.3, 1.0)  # side of the photo crop, as a fraction of the photo's shorter side
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def image_editor(composite: CompositeConfig | None, silhouette: SilhouetteCropConfig | None,
                 size: int) -> Callable[[Image.Image, tuple[int, int]], Image.Image] | None:
    """The edit a dataset asks for, as f(image, key=(index in the source, copy number)), or None."""
    if composite is None and silhouette is None:
        return None
    if composite is not None:
        background_photos(composite.backgrounds)  # load (and check) once, before decoding processes fork
    return functools.partial(_edit, composite=composite, silhouette=silhouette, size=size)


def _edit(image: Image.Image, key: tuple[int, int], composite, silhouette, size: int) -> Image.Image:
    if composite is not None:
        image = paste_on_photo(image, np.random.default_rng([composite.seed, *key]), composite, size)
    if silhouette is not None:
        image = silhouette_crop(image, silhouette)
    return image


def paste_on_photo(image: Image.Image, rng: np.random.Generator, cfg: CompositeConfig, size: int) -> Image.Image:
    """A size x size RGB image: the object of `image` on a crop of a background photo."""
    cutout = with_alpha(image)
    box = cutout.getchannel("A").getbbox()
    cutout = cutout.crop(box) if box else cutout
    scale = rng.uniform(*cfg.scale) * size / max(cutout.size)
    cutout = cutout.resize((max(1, round(cutout.width * scale)), max(1, round(cutout.height * scale))),
                           Image.Resampling.LANCZOS)
    if cfg.flip and rng.random() < 0.5:
        cutout = ImageOps.mirror(cutout)
    canvas = _photo_crop(rng, background_photos(cfg.backgrounds), size)
    position = (int(rng.integers(0, size - cutout.width + 1)), int(rng.integers(0, size - cutout.height + 1)))
    canvas.paste(cutout, position, cutout)
    return canvas


def with_alpha(image: Image.Image) -> Image.Image:
    """RGBA whose alpha marks the object: the image's own transparency when it has some,
    else every pixel except the background colour's region that touches the border."""
    if image.mode in ALPHA_MODES or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        if rgba.getchannel("A").getextrema()[0] < 255:
            return rgba
    rgb = np.asarray(to_mode(image, "RGB"))
    return Image.fromarray(np.dstack([rgb, _object_mask(rgb) * np.uint8(255)]), "RGBA")


def _object_mask(rgb: np.ndarray) -> np.ndarray:
    """1 on the object: pixels near the border colour that connect to the border are background."""
    from scipy import ndimage

    near = np.abs(rgb.astype(np.int16) - border_colour(Image.fromarray(rgb))).max(axis=2) <= BACKGROUND_TOLERANCE
    regions, _ = ndimage.label(near)
    touching = np.unique(np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]]))
    background = np.isin(regions, touching[touching > 0])
    return (~background).astype(np.uint8) if not background.all() else np.ones(rgb.shape[:2], np.uint8)


def _photo_crop(rng: np.random.Generator, photos: tuple[np.ndarray, ...], size: int) -> Image.Image:
    photo = photos[int(rng.integers(len(photos)))]
    height, width = photo.shape[:2]
    side = max(1, int(rng.uniform(*BACKGROUND_CROP) * min(height, width)))
    top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
    crop = Image.fromarray(photo[top:top + side, left:left + side])
    return crop.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)


@functools.lru_cache(maxsize=4)
def background_photos(backgrounds: str) -> tuple[np.ndarray, ...]:
    """The background photos as RGB arrays (cached: each decoding process loads them once)."""
    if backgrounds == SKLEARN_PHOTOS:
        from sklearn.datasets import load_sample_images

        return tuple(load_sample_images().images)
    folder = Path(backgrounds)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p)) if folder.is_dir() else []
    if not files:
        raise UserError(f"composite.backgrounds: {folder} is not a folder of photos; "
                        f"give one, or '{SKLEARN_PHOTOS}' for scikit-learn's two sample photos")
    photos = []
    for path in files:
        with Image.open(path) as photo:
            photos.append(np.asarray(to_mode(ImageOps.exif_transpose(photo), "RGB")))
    return tuple(photos)


def silhouette_crop(image: Image.Image, cfg: SilhouetteCropConfig) -> Image.Image:
    """`image` cropped to its object's padded bounding box (unchanged when nothing is found)."""
    rgb = np.asarray(to_mode(image, "RGB"), dtype=np.int16)
    if cfg.find == "outline":
        found = rgb.mean(axis=2) < cfg.threshold
    else:
        found = np.abs(rgb - border_colour(Image.fromarray(rgb.astype(np.uint8)))).max(axis=2) > cfg.threshold
    rows, cols = np.flatnonzero(found.any(axis=1)), np.flatnonzero(found.any(axis=0))
    if len(rows) == 0:
        return image
    pad_y, pad_x = round((rows[-1] + 1 - rows[0]) * cfg.pad), round((cols[-1] + 1 - cols[0]) * cfg.pad)
    return image.crop((max(0, cols[0] - pad_x), max(0, rows[0] - pad_y),
                       min(image.width, cols[-1] + 1 + pad_x), min(image.height, rows[-1] + 1 + pad_y)))
