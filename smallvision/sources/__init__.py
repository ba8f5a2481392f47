"""Data sources: the fetch stage puts each one's raw data under data/raw/<name>.

A source writes either an image folder (`<class>/<image>`, or `train/` and `test/`
subfolders) or `arrays.npz` (uint8 `images`, int `labels`, `class_names`, and optionally
`split` with 'train'/'test' per image). Prepare reads both layouts. The pokeapi source
writes CSV files instead: facts and type targets that prepare joins to image folders.
Kinds: sklearn_digits, kaggle, torchvision, tfds, pokeapi (one module each).
"""

from __future__ import annotations

# Importing the modules registers their kinds.
from smallvision.sources import digits, kaggle, pokeapi, tfds, torchvision_datasets  # noqa: F401
from smallvision.sources.base import ARRAYS_FILE, SOURCES  # noqa: F401  (defined there; re-exported)


def load_sources(raw: dict) -> dict:
    """params.yaml's `sources`, each validated by its kind's options model (one UserError)."""
    from pydantic import BaseModel

    from smallvision.options.schema import PARAMS_FILE, Strict, choice_of, validate

    class Sources(Strict):
        sources: dict[str, choice_of(SOURCES, "kind")] = {}  # type: ignore[valid-type]

    checked: BaseModel = validate(Sources, {"sources": raw or {}}, where="", file=PARAMS_FILE)
    return checked.sources
