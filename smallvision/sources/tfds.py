"""TensorFlow Datasets (an optional extra: it needs TensorFlow). Written as an image folder with
TFDS's train/test split, the encoded images copied as they are (no re-encoding)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterable, Literal

from smallvision.core.errors import UserError
from smallvision.core.progress import progress
from smallvision.options.schema import Strict
from smallvision.sources.base import SOURCES

INSTALL_HINT = "pip install tensorflow tensorflow-datasets"
KAGGLE_CARS = "jutrera/stanford-car-dataset-by-classes-folder"
SPLITS = ("train", "test")


@SOURCES.register("tfds")
class TfdsSource(Strict):
    kind: Literal["tfds"]
    name: str = "cars196"

    def fetch(self, out_dir: Path) -> dict:
        tfds = _import_tfds(self.name)
        scratch = out_dir / ".download"
        try:
            builder = tfds.builder(self.name, data_dir=str(scratch))
            builder.download_and_prepare()
        except Exception as err:  # TFDS raises many kinds (DownloadError, checksum, HTTP) for one cause
            raise UserError(
                f"TFDS could not download '{self.name}' from its upstream ({type(err).__name__}: {err}). "
                f"Its upstream host may be gone (cars196's is); use the Kaggle mirror instead: "
                f"{{kind: kaggle, dataset: {KAGGLE_CARS}}}"
            ) from None
        class_names = builder.info.features["label"].names
        counts = {}
        for split in SPLITS:
            examples = tfds.as_numpy(builder.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()}))
            counts[split] = write_encoded_images(((ex["image"], ex["label"]) for ex in examples),
                                                 class_names, out_dir / split)
        shutil.rmtree(scratch)
        return {"name": self.name, "images": sum(counts.values()), "classes": len(class_names), **counts}


def _import_tfds(name: str):
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise UserError(
            f"the tfds source ('{name}') needs TensorFlow Datasets, an optional extra: `{INSTALL_HINT}`. "
            f"For cars196 without TensorFlow use the Kaggle mirror: {{kind: kaggle, dataset: {KAGGLE_CARS}}}"
        ) from None
    return tfds


def write_encoded_images(examples: Iterable[tuple[bytes, int]], class_names: list[str], folder: Path) -> int:
    """`folder/<class>/<n>.<ext>` from (encoded image bytes, label) pairs; the extension follows
    the bytes' format so prepare decodes each file as what it is."""
    count = 0
    for count, (encoded, label) in enumerate(progress(examples, desc=folder.name, unit="img"), start=1):
        class_dir = folder / class_names[int(label)].replace("/", "-")
        class_dir.mkdir(parents=True, exist_ok=True)
        (class_dir / f"{count:06d}{_extension(encoded)}").write_bytes(encoded)
    return count


def _extension(encoded: bytes) -> str:
    return ".png" if encoded.startswith(b"\x89PNG") else ".jpg"
