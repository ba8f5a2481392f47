"""Data sources: the fetch stage puts each one's raw data under data/raw/<name>.

A source writes either an image folder (`<class>/<image>`, or `train/` and `test/`
subfolders) or `arrays.npz` (uint8 `images`, int `labels`, `class_names`, and optionally
`split` with 'train'/'test' per image). Prepare reads both layouts. The pokeapi source
writes CSV files instead: facts and type targets that prepare joins to image folders.
Kinds: sklearn_digits, kaggle, torchvision, tfds, pokeapi (one module each).
"""

from __future__ import annotations

from smallvision.registry import Registry

SOURCES: Registry = Registry("source kind")

ARRAYS_FILE = "arrays.npz"

# Importing the modules registers their kinds.
from smallvision.sources import digits, kaggle, pokeapi, tfds, torchvision_datasets  # noqa: E402,F401
