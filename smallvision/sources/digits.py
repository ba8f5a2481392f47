"""scikit-learn's handwritten digits: 1,797 real 8x8 images that ship inside scikit-learn."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from smallvision.options.schema import Strict
from smallvision.sources.base import ARRAYS_FILE, SOURCES

DIGITS_MAX_VALUE = 16  # load_digits stores ink as 0..16


@SOURCES.register("sklearn_digits")
class DigitsSource(Strict):
    kind: Literal["sklearn_digits"]

    def fetch(self, out_dir: Path) -> dict:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = np.rint(digits.images * (255 / DIGITS_MAX_VALUE)).clip(0, 255).astype(np.uint8)
        np.savez(
            out_dir / ARRAYS_FILE,
            images=images,
            labels=digits.target.astype(np.int64),
            class_names=np.array([str(name) for name in digits.target_names]),
        )
        return {"images": int(len(images)), "classes": int(len(digits.target_names))}
