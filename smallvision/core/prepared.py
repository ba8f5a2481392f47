"""The prepared-dataset folder: what prepare writes and what training and evaluation read.

data/prepared/<name>/
  <split>_images.npy   uint8 (N, C, H, W)       split in train, val, test
  <split>_labels.npy   int64 (N,); for a multi-label target (task "multilabel", e.g. the
                       Pokémon types) uint8 (N, len(classes)) multi-hot
  classes.json         class names, index = label (column of the multi-hot labels)
  files.json           source file of every image, per split
  prepare.json         summary: task ("single" | "multilabel"), counts, skipped and ignored files,
                       and (where there are any) the hidden folders and the class folders linking to
                       images listed already that were left out (no timings: the same images give
                       the same bytes)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smallvision.core.errors import UserError
from smallvision.core.io import read_json, write_json
from smallvision.core.paths import PREPARED as PREPARED_DIR

SPLITS = ("train", "val", "test")


def save_prepared(out: Path, decoded, splits: dict[str, np.ndarray], summary: dict) -> None:
    for split, index in splits.items():
        np.save(out / f"{split}_images.npy", np.ascontiguousarray(decoded.images[index]))
        np.save(out / f"{split}_labels.npy", decoded.labels[index])
    write_json(out / "classes.json", decoded.classes)
    write_json(out / "files.json", {split: [decoded.files[i] for i in index] for split, index in splits.items()})
    write_json(out / "prepare.json", summary)


@dataclass
class Split:
    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class PreparedData:
    name: str
    classes: list[str]
    splits: dict[str, Split]
    files: dict[str, list[str]]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return int(self._any_split.images.shape[1])

    @property
    def image_size(self) -> int:
        return int(self._any_split.images.shape[-1])

    @property
    def multilabel(self) -> bool:
        return self._any_split.labels.ndim == 2

    @property
    def _any_split(self) -> Split:
        return next(iter(self.splits.values()))

    def __getitem__(self, split: str) -> Split:
        return self.splits[split]

    def with_train_per_class(self, per_class: int | None, seed: int) -> PreparedData:
        """The same data with its training split cut to `per_class` images of each class (all of a
        smaller class), drawn with `seed`: each seed of a data-efficiency run trains on its own draw,
        so the interval over seeds covers which images were drawn. The validation and test splits
        stay as they are. None: the data unchanged."""
        if per_class is None:
            return self
        if self.multilabel:
            raise UserError(f"dataset '{self.name}' is multi-label: a training subset of so many images per class "
                            "is not defined for it (remove train_per_class from its runs)")
        train = self.splits["train"]
        rng = np.random.default_rng(seed)
        kept = np.sort(np.concatenate([rng.permutation(np.flatnonzero(train.labels == label))[:per_class]
                                       for label in range(self.num_classes)]))
        files = dict(self.files)
        if "train" in files:
            files["train"] = [files["train"][i] for i in kept]
        splits = {**self.splits, "train": Split(train.images[kept], train.labels[kept])}
        return PreparedData(self.name, self.classes, splits, files)


def prepared_path(dataset: str) -> Path:
    return PREPARED_DIR / dataset


def load_prepared(dataset: str, splits=SPLITS, folder: Path | None = None) -> PreparedData:
    folder = folder or prepared_path(dataset)
    if not (folder / "classes.json").exists():
        raise UserError(f"dataset '{dataset}' is not prepared ({folder} is missing): run `dvc repro prepare@{dataset}`")
    loaded = {
        split: Split(np.load(folder / f"{split}_images.npy"), np.load(folder / f"{split}_labels.npy"))
        for split in splits
    }
    return PreparedData(dataset, read_json(folder / "classes.json"), loaded, read_json(folder / "files.json"))
