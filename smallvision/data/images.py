"""Decode one image file into a square uint8 array, whatever its mode."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
WHITE = 255


class BadImage(Exception):
    """A file that cannot be decoded as an image."""


# What a file of another extension is taken for when its bytes say so (real datasets hold
# JPEGs named `x.asp` or `x.jpg')`); SVG, text and the like are not images.
SNIFFED_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF")


def is_image_file(path: Path) -> bool:
    """An image extension, or else bytes that start like an image; never a hidden file
    (macOS `._x.jpg` forks). Only files of other extensions are opened (their header only)."""
    path = Path(path)
    if path.name.startswith("."):
        return False
    return path.suffix.lower() in IMAGE_EXTENSIONS or looks_like_image(path)


def looks_like_image(path: Path) -> bool:
    """Whether PIL recognises the file's header as one of SNIFFED_FORMATS."""
    try:
        with Image.open(path, formats=SNIFFED_FORMATS):
            return True
    except Image.DecompressionBombError:
        return True  # an image, too large: decoding says so
    except (OSError, SyntaxError, ValueError):
        return False


def load_image(path: str | Path, size: int, color: str, resize: str,
               edit: Callable[[Image.Image], Image.Image] | None = None) -> np.ndarray:
    """(size, size, 3) for rgb or (size, size, 1) for gray, uint8.

    EXIF orientation is applied; transparency is flattened onto white; 16-bit images are
    scaled, not clipped; CMYK and palette images are converted. `edit` (a derived dataset's
    composite or crop) sees the full-resolution image, transparency included."""
    try:
        with Image.open(path) as image:
            if image.format == "JPEG" and edit is None:
                # Let libjpeg decode at a reduced scale when the image is much larger than needed.
                image.draft("RGB" if color == "rgb" else "L", (size, size))
            ImageOps.exif_transpose(image, in_place=True)  # in place: no copy of every image
            return square_array(image, size, color, resize, edit)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise BadImage(f"{path}: cannot decode as an image ({err})") from None


def square_array(image: Image.Image, size: int, color: str, resize: str,
                 edit: Callable[[Image.Image], Image.Image] | None = None) -> np.ndarray:
    """An opened image as prepare stores it: edited, converted to `color`, fitted to a square."""
    if edit is not None:
        image = edit(image)
    image = fit_square(to_mode(image, "RGB" if color == "rgb" else "L"), size, resize)
    array = np.asarray(image, dtype=np.uint8)
    return array[:, :, None] if array.ndim == 2 else array


def to_mode(image: Image.Image, mode: str) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        image = _to_8bit(image)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (WHITE, WHITE, WHITE, 255))
        image = Image.alpha_composite(background, rgba).convert("RGB")
    return image if image.mode == mode else image.convert(mode)


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit and 32-bit integer images hold 0..65535: scale to 0..255 (PIL would clip)."""
    values = np.asarray(image, dtype=np.float64)
    scale = 255.0 / 65535.0 if image.mode != "F" else 255.0 / max(values.max(), 1.0)
    return Image.fromarray(np.clip(np.rint(values * scale), 0, 255).astype(np.uint8))  # mode L


def fit_square(image: Image.Image, size: int, resize: str) -> Image.Image:
    width, height = image.size
    if resize == "crop" and width != height:
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    elif resize == "pad" and width != height:
        side = max(width, height)
        canvas = Image.new(image.mode, (side, side), border_colour(image))
        canvas.paste(image, ((side - width) // 2, (side - height) // 2))
        image = canvas
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    return image


def border_colour(image: Image.Image):
    """The mean colour of the image's edge pixels, so padding looks like background."""
    array = np.asarray(image)
    edges = np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])
    mean = np.rint(edges.mean(axis=0)).astype(int)
    return tuple(mean.tolist()) if mean.ndim else int(mean)
