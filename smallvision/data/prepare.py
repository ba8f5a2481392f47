"""Prepare: decode every image once, at a fixed size, into uint8 arrays with fixed splits."""

from __future__ import annotations

import multiprocessing
import os
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from smallvision.config import DatasetConfig
from smallvision.data.images import BadImage, fit_square, load_image, to_mode
from smallvision.data.prepared import SPLITS, save_prepared
from smallvision.data.scan import FolderListing, is_arrays_root, scan_folder
from smallvision.errors import UserError
from smallvision.io import atomic_dir
from smallvision.progress import log, progress
from smallvision.sources import ARRAYS_FILE

CHUNK = 256  # images per task sent to a decoding process


@dataclass
class Decoded:
    images: np.ndarray  # (N, C, H, W) uint8
    labels: np.ndarray  # (N,) int64
    classes: list[str]
    files: list[str]  # where each image came from (relative to the root)
    split: np.ndarray | None  # 'train'/'test' per image when the source fixes it
    skipped: list[str]
    ignored: list[str]


def prepare_dataset(name: str, cfg: DatasetConfig, out_dir: Path) -> dict:
    """Decode, split and save; returns the summary also written to prepare.json."""
    where = f"datasets.{name}"
    start = time.perf_counter()
    root = Path(cfg.root)
    decoded = decode_arrays(root, cfg) if is_arrays_root(root) else decode_folder(scan_folder(root, where), cfg, where)
    seconds = time.perf_counter() - start
    splits = split_indices(decoded, cfg, where)
    summary = {
        "dataset": name,
        "root": str(root),
        "images": int(len(decoded.labels)),
        "classes": len(decoded.classes),
        "image_shape": list(decoded.images.shape[1:]),
        "split_sizes": {split: int(len(idx)) for split, idx in splits.items()},
        "decode_seconds": round(seconds, 3),
        "images_per_second": round(len(decoded.labels) / max(seconds, 1e-9), 1),
        "skipped_bad_images": decoded.skipped,
        "ignored_non_images": decoded.ignored,
    }
    with atomic_dir(out_dir) as tmp:
        save_prepared(tmp, decoded, splits, summary)
    log(
        f"prepared {name}: {summary['images']} images, {summary['classes']} classes, "
        f"{summary['split_sizes']} in {seconds:.1f}s ({summary['images_per_second']:.0f} images/s)"
    )
    if decoded.skipped:
        log(f"skipped {len(decoded.skipped)} unreadable images (listed in prepare.json)")
    return summary


def decode_folder(listing: FolderListing, cfg: DatasetConfig, where: str) -> Decoded:
    size, channels = cfg.image_size, 3 if cfg.color == "rgb" else 1
    images = np.empty((len(listing.files), channels, size, size), dtype=np.uint8)
    ok = np.ones(len(listing.files), dtype=bool)
    skipped: list[str] = []
    chunks = [range(i, min(i + CHUNK, len(listing.files))) for i in range(0, len(listing.files), CHUNK)]
    # Each task carries only its own paths: sending the whole list with every chunk made
    # pickling, not decoding, the bottleneck on large folders.
    tasks = [[str(listing.files[i]) for i in chunk] for chunk in chunks]
    work = partial(_decode_chunk, cfg=cfg)
    workers = cfg.workers or os.cpu_count() or 1
    with _pool(workers) as pool:
        mapper = pool.imap if pool else map
        bar = progress(total=len(listing.files), desc="decode", unit="img")
        for chunk, (arrays, errors) in zip(chunks, mapper(work, tasks)):
            images[chunk.start:chunk.stop] = arrays
            for offset, message in errors:
                if cfg.on_bad_image == "error":
                    raise UserError(
                        f"{where}: {message}. Fix or delete the file, or set {where}.on_bad_image: skip"
                    )
                ok[chunk.start + offset] = False
                skipped.append(message)
            bar.update(len(chunk))
        bar.close()
    relative = [str(path.relative_to(listing.root)) for path in listing.files]
    keep = np.flatnonzero(ok)
    return Decoded(
        images=images[keep],
        labels=np.asarray(listing.labels, dtype=np.int64)[keep],
        classes=listing.classes,
        files=[relative[i] for i in keep],
        split=None if listing.split is None else np.asarray(listing.split)[keep],
        skipped=skipped,
        ignored=[str(Path(p).relative_to(listing.root)) for p in listing.ignored],
    )


def _pool(workers: int):
    if workers <= 1:
        return _NoPool()
    return multiprocessing.get_context("fork").Pool(workers)


class _NoPool:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _decode_chunk(paths: list[str], cfg: DatasetConfig):
    size, channels = cfg.image_size, 3 if cfg.color == "rgb" else 1
    out = np.zeros((len(paths), channels, size, size), dtype=np.uint8)
    errors = []
    for row, path in enumerate(paths):
        try:
            out[row] = load_image(path, size, cfg.color, cfg.resize).transpose(2, 0, 1)
        except BadImage as err:
            errors.append((row, str(err)))
    return out, errors


def decode_arrays(root: Path, cfg: DatasetConfig) -> Decoded:
    """A fetched source stored as arrays.npz: resize and convert each image the same way."""
    from PIL import Image

    with np.load(root / ARRAYS_FILE, allow_pickle=False) as data:
        raw, labels, classes = data["images"], data["labels"], [str(c) for c in data["class_names"]]
        split = data["split"].astype(str) if "split" in data.files else None
    out = np.empty((len(raw), 3 if cfg.color == "rgb" else 1, cfg.image_size, cfg.image_size), dtype=np.uint8)
    mode = "RGB" if cfg.color == "rgb" else "L"
    for index in progress(range(len(raw)), desc="convert", unit="img"):
        image = fit_square(to_mode(Image.fromarray(raw[index]), mode), cfg.image_size, cfg.resize)
        array = np.asarray(image, dtype=np.uint8)
        out[index] = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    files = [f"{ARRAYS_FILE}#{i}" for i in range(len(raw))]
    return Decoded(out, labels.astype(np.int64), classes, files, split, [], [])


def split_indices(decoded: Decoded, cfg: DatasetConfig, where: str) -> dict[str, np.ndarray]:
    """Per-class shuffled split, fixed by split_seed. A source's own test split is kept."""
    rng = np.random.default_rng(cfg.split_seed)
    parts: dict[str, list[np.ndarray]] = {split: [] for split in SPLITS}
    has_test = decoded.split is not None
    for label, name in enumerate(decoded.classes):
        pool = np.flatnonzero((decoded.labels == label) & (decoded.split == "train" if has_test else True))
        pool = rng.permutation(pool)
        n = len(pool)
        n_test = 0 if has_test else max(1, round(n * cfg.test_fraction))
        n_val = max(1, round(n * cfg.val_fraction)) if cfg.val_fraction > 0 else 0
        if n - n_test - n_val < 1:
            needed = 1 + (0 if has_test else 1) + (1 if cfg.val_fraction > 0 else 0)
            raise UserError(
                f"{where}: class '{name}' has {n} training image(s); splitting it needs at least {needed}. "
                "Add images, remove the class folder, or set val_fraction: 0"
            )
        parts["test"].append(pool[:n_test])
        parts["val"].append(pool[n_test:n_test + n_val])
        parts["train"].append(pool[n_test + n_val:])
        if has_test:
            parts["test"].append(np.flatnonzero((decoded.labels == label) & (decoded.split == "test")))
    return {split: np.sort(np.concatenate(chunks)).astype(np.int64) for split, chunks in parts.items()}
