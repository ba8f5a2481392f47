"""Prepare: decode every image once, at a fixed size, into uint8 arrays with fixed splits.

Which images and labels (class subsets, per-class limits, Pokémon type targets) is decided
before decoding (selection.py); derived images (composites, silhouette crops) are made
while decoding (derive.py)."""

from __future__ import annotations

import multiprocessing
import os
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from smallvision.core.errors import UserError
from smallvision.core.io import atomic_dir
from smallvision.core.prepared import SPLITS, save_prepared
from smallvision.core.progress import log, progress
from smallvision.data.derive import image_editor
from smallvision.data.images import BadImage, load_image, square_array
from smallvision.data.scan import FolderListing, is_arrays_root, scan_folder
from smallvision.data.selection import Selection, select_examples
from smallvision.options.dataset import DatasetConfig
from smallvision.sources.base import ARRAYS_FILE

CHUNK = 256  # images per task sent to a decoding process


@dataclass
class ArraysSource:
    """A fetched source stored as arrays.npz (see smallvision.sources)."""

    images: np.ndarray  # (N, H, W) or (N, H, W, C) uint8
    labels: np.ndarray
    classes: list[str]
    split: np.ndarray | None


@dataclass
class Decoded:
    images: np.ndarray  # (N, C, H, W) uint8
    labels: np.ndarray  # (N,) int64, or (N, len(classes)) uint8 multi-hot when task is "multilabel"
    classes: list[str]
    files: list[str]  # where each image came from (relative to the root)
    split: np.ndarray | None  # 'train'/'test' per image when the source fixes it
    skipped: list[str]
    ignored: list[str]
    strata: np.ndarray  # (N,) the groups the split is stratified by (see selection.py)
    strata_names: list[str]
    sources: np.ndarray  # (N,) source image of each image: its copies stay in one split
    task: str = "single"


# Timings vary from run to run: they are returned (and the stage writes them to a metrics
# file) but kept out of prepare.json, so that re-preparing the same images gives the same
# output hash and DVC keeps every stage downstream cached.
TIMINGS = ("decode_seconds", "images_per_second")


def prepare_dataset(name: str, cfg: DatasetConfig, out_dir: Path) -> dict:
    """Decode, split and save; returns the summary written to prepare.json plus the timings."""
    where = f"datasets.{name}"
    start = time.perf_counter()
    root = Path(cfg.root)
    source = read_arrays(root) if is_arrays_root(root) else scan_folder(root, where)
    selection = select_examples(source.labels, source.classes, cfg, where)
    if isinstance(source, ArraysSource):
        decoded = decode_arrays(source, selection, cfg)
    else:
        decoded = drop_small_classes(decode_folder(source, selection, cfg, where), cfg.min_per_class, where)
    require_two_classes(decoded, root, where)
    seconds = time.perf_counter() - start
    splits = split_indices(decoded, cfg, where)
    summary = {
        "dataset": name,
        "root": str(root),
        "task": decoded.task,
        "images": int(len(decoded.labels)),
        "classes": len(decoded.classes),
        "image_shape": list(decoded.images.shape[1:]),
        "split_sizes": {split: int(len(idx)) for split, idx in splits.items()},
        "decode_seconds": round(seconds, 3),
        "images_per_second": round(len(decoded.labels) / max(seconds, 1e-9), 1),
        "skipped_bad_images": decoded.skipped,
        "ignored_non_images": decoded.ignored,
        **left_out_folders(source),
    }
    with atomic_dir(out_dir) as tmp:
        save_prepared(tmp, decoded, splits, {k: v for k, v in summary.items() if k not in TIMINGS})
    log(
        f"prepared {name}: {summary['images']} images, {summary['classes']} classes, "
        f"{summary['split_sizes']} in {seconds:.1f}s ({summary['images_per_second']:.0f} images/s)"
    )
    if decoded.skipped:
        log(f"skipped {len(decoded.skipped)} unreadable image(s) (listed in prepare.json): {_some(decoded.skipped)}")
    if decoded.ignored:
        log(f"ignored {len(decoded.ignored)} non-image file(s) (listed in prepare.json): {_some(decoded.ignored)}")
    if summary.get("hidden_folders"):
        hidden = [f"{name} ({count} images)" for name, count in summary["hidden_folders"].items()]
        log(f"left out {len(hidden)} hidden folder(s) holding images, as every folder whose name starts with '.' "
            f"(listed in prepare.json; rename one to make it a class): {_some(hidden)}")
    if summary.get("linked_class_folders"):
        linked = [f"{name} -> {target}" for name, target in summary["linked_class_folders"].items()]
        log(f"left out {len(linked)} class folder(s) that link to images listed already, which would count them "
            f"twice under two classes (listed in prepare.json): {_some(linked)}")
    return summary


def left_out_folders(source) -> dict:
    """prepare.json's record of the folders scanning left out; none for a folder without such, so
    that its prepared folder keeps the same bytes (and DVC every stage after it cached)."""
    if not isinstance(source, FolderListing):  # a fetched source's arrays: no folders
        return {}
    left_out = {"hidden_folders": source.hidden_folders, "linked_class_folders": source.linked_class_folders}
    return {key: value for key, value in left_out.items() if value}


def require_two_classes(decoded: Decoded, root: Path, where: str) -> None:
    """A classifier needs two classes at least: one left (a folder of one class, or `classes`,
    `keep_labels` and `min_per_class` leaving one) is refused here, not in training's traceback."""
    if len(decoded.classes) >= 2:
        return
    what = "label" if decoded.task == "multilabel" else "class"
    left = f"only the {what} '{decoded.classes[0]}'" if decoded.classes else f"no {what}"
    raise UserError(f"{where}: {left} is left after preparation ({len(decoded.labels)} images from {root}); a "
                    f"classifier needs at least two. Add another class folder, or keep more classes ({where}.classes, "
                    "keep_labels, min_per_class, max_per_class)")


def _some(names: list[str], shown: int = 5) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def decode_folder(listing: FolderListing, selection: Selection, cfg: DatasetConfig, where: str) -> Decoded:
    size, channels = cfg.image_size, 3 if cfg.color == "rgb" else 1
    rows = selection.rows
    images = np.empty((len(rows), channels, size, size), dtype=np.uint8)
    ok = np.ones(len(rows), dtype=bool)
    skipped: dict[str, None] = {}  # relative paths, once each (a composite decodes a file once per copy)
    chunks = [range(i, min(i + CHUNK, len(rows))) for i in range(0, len(rows), CHUNK)]
    # Each task carries only its own paths: sending the whole list with every chunk made
    # pickling, not decoding, the bottleneck on large folders.
    tasks = [[(_edit_key(selection, i), str(listing.files[rows[i]])) for i in chunk] for chunk in chunks]
    work = partial(_decode_chunk, cfg=cfg, editor=image_editor(cfg.composite, cfg.silhouette_crop, size))
    workers = cfg.workers or os.cpu_count() or 1
    with _pool(workers) as pool:
        mapper = pool.imap if pool else map
        bar = progress(total=len(rows), desc="decode", unit="img")
        for chunk, (arrays, errors) in zip(chunks, mapper(work, tasks)):
            images[chunk.start:chunk.stop] = arrays
            for offset, message in errors:
                if cfg.on_bad_image == "error":
                    raise UserError(
                        f"{where}: {message}. Fix or delete the file, or set {where}.on_bad_image: skip"
                    )
                if not skipped:
                    log(f"skipping unreadable images (on_bad_image: skip); the first: {message}")
                ok[chunk.start + offset] = False
                skipped.setdefault(str(listing.files[rows[chunk.start + offset]].relative_to(listing.root)))
            bar.update(len(chunk))
        bar.close()
    files = _file_names([str(listing.files[row].relative_to(listing.root)) for row in rows], selection)
    split = None if listing.split is None else np.asarray(listing.split)[rows]
    ignored = [str(Path(p).relative_to(listing.root)) for p in listing.ignored]
    return _decoded(images, selection, np.flatnonzero(ok), files, split, list(skipped), ignored)


def drop_small_classes(decoded: Decoded, min_per_class: int, where: str) -> Decoded:
    """min_per_class again, on the images that decoded: selection counted files, and with
    on_bad_image: skip a class may have lost some (or all) of them."""
    if not decoded.skipped:
        return decoded
    pairs = np.unique(np.stack([decoded.strata, decoded.sources]), axis=1)  # copies count once
    counts = np.bincount(pairs[0], minlength=len(decoded.strata_names))
    small = np.flatnonzero(counts < min_per_class)
    if len(small) == 0:
        return decoded
    if len(small) == len(counts):
        raise UserError(f"{where}: no class has min_per_class={min_per_class} readable images "
                        f"({len(decoded.skipped)} unreadable skipped); lower min_per_class or replace the files "
                        "listed as skipped")
    dropped = [f"{decoded.strata_names[i]} ({counts[i]})" for i in small]
    log(f"dropped {len(small)} class(es) left with fewer than min_per_class={min_per_class} readable images: "
        f"{_some(dropped)}")
    keep = np.flatnonzero(~np.isin(decoded.strata, small))
    present = np.setdiff1d(np.arange(len(counts)), small)
    strata = np.searchsorted(present, decoded.strata[keep])
    names = [decoded.strata_names[i] for i in present]
    single = decoded.task != "multilabel"  # single-label targets are their strata (see selection.py)
    return replace(
        decoded,
        images=decoded.images[keep],
        labels=strata if single else decoded.labels[keep],
        classes=names if single else decoded.classes,
        files=[decoded.files[i] for i in keep],
        split=None if decoded.split is None else decoded.split[keep],
        strata=strata,
        strata_names=names,
        sources=decoded.sources[keep],
    )


def _decoded(images, selection: Selection, keep: np.ndarray, files: list[str], split, skipped, ignored) -> Decoded:
    """The images that decoded (`keep`, positions in the selection) with their labels."""
    return Decoded(
        images=images if len(keep) == len(images) else images[keep],  # no copy when all decoded
        labels=selection.labels[keep],
        classes=selection.classes,
        files=[files[i] for i in keep],
        split=None if split is None else split[keep],
        skipped=skipped,
        ignored=ignored,
        strata=selection.strata[keep],
        strata_names=selection.strata_names,
        sources=selection.rows[keep],
        task=selection.task,
    )


def _edit_key(selection: Selection, position: int) -> tuple[int, int]:
    """What seeds a derived image: its source image and copy number (not its decoding order)."""
    copy = 0 if selection.copy is None else int(selection.copy[position])
    return int(selection.rows[position]), copy


def _file_names(files: list[str], selection: Selection) -> list[str]:
    """Copies of one source image are told apart as file#copy."""
    if selection.copy is None:
        return files
    return [f"{name}#{copy}" for name, copy in zip(files, selection.copy)]


def _pool(workers: int):
    if workers <= 1:
        return _NoPool()
    return multiprocessing.get_context("fork").Pool(workers)


class _NoPool:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _decode_chunk(items: list[tuple[tuple[int, int], str]], cfg: DatasetConfig, editor):
    """Decode (edit key, path) pairs; the key seeds a derived dataset's randomness."""
    size, channels = cfg.image_size, 3 if cfg.color == "rgb" else 1
    out = np.zeros((len(items), channels, size, size), dtype=np.uint8)
    errors = []
    for row, (key, path) in enumerate(items):
        edit = partial(editor, key=key) if editor else None
        try:
            out[row] = load_image(path, size, cfg.color, cfg.resize, edit).transpose(2, 0, 1)
        except BadImage as err:
            errors.append((row, str(err)))
    return out, errors


def read_arrays(root: Path) -> ArraysSource:
    with np.load(root / ARRAYS_FILE, allow_pickle=False) as data:
        split = data["split"].astype(str) if "split" in data.files else None
        return ArraysSource(data["images"], data["labels"], [str(c) for c in data["class_names"]], split)


def decode_arrays(source: ArraysSource, selection: Selection, cfg: DatasetConfig) -> Decoded:
    """A fetched source stored as arrays.npz: resize and convert each image the same way."""
    rows = selection.rows
    out = np.empty((len(rows), 3 if cfg.color == "rgb" else 1, cfg.image_size, cfg.image_size), dtype=np.uint8)
    editor = image_editor(cfg.composite, cfg.silhouette_crop, cfg.image_size)
    for row, index in enumerate(progress(rows, desc="convert", unit="img")):
        edit = partial(editor, key=_edit_key(selection, row)) if editor else None
        image = Image.fromarray(source.images[index])
        out[row] = square_array(image, cfg.image_size, cfg.color, cfg.resize, edit).transpose(2, 0, 1)
    files = _file_names([f"{ARRAYS_FILE}#{i}" for i in rows], selection)
    split = None if source.split is None else source.split[rows]
    return _decoded(out, selection, np.arange(len(rows)), files, split, [], [])


def _split_units(decoded: Decoded, cfg: DatasetConfig, where: str) -> tuple[np.ndarray, str]:
    """What the split deals out whole: each source image (its copies follow it), or with `split_by:
    folder` each class folder (a species: every image of it lands in one split)."""
    if cfg.split_by == "image":
        return decoded.sources, "image"
    if decoded.split is not None:
        raise UserError(f"{where}: split_by: folder needs a folder that is split here, not one with its own "
                        "train/ and test/")
    folders = [file.split("/")[0] for file in decoded.files]
    return np.unique(folders, return_inverse=True)[1], "class folder"


def split_indices(decoded: Decoded, cfg: DatasetConfig, where: str) -> dict[str, np.ndarray]:
    """Per-class (per-stratum) shuffled split of the source images, fixed by split_seed; the
    copies of a source image follow it (with `split_by: folder`, whole class folders are dealt
    out per stratum). A source's own test split is kept."""
    rng = np.random.default_rng(cfg.split_seed)
    parts: dict[str, list[np.ndarray]] = {split: [] for split in SPLITS}
    has_test = decoded.split is not None
    units, unit = _split_units(decoded, cfg, where)
    for stratum, name in enumerate(decoded.strata_names):
        in_stratum = decoded.strata == stratum
        in_pool = in_stratum & (decoded.split == "train" if has_test else True)
        pool = rng.permutation(np.unique(units[in_pool]))
        n = len(pool)
        n_test = 0 if has_test else max(1, round(n * cfg.test_fraction))
        n_val = max(1, round(n * cfg.val_fraction)) if cfg.val_fraction > 0 else 0
        if n - n_test - n_val < 1:
            needed = 1 + (0 if has_test else 1) + (1 if cfg.val_fraction > 0 else 0)
            raise UserError(
                f"{where}: class '{name}' has {n} training {unit}(s); splitting it needs at least {needed}. "
                "Add images, remove the class folder (or set min_per_class), or set val_fraction: 0"
            )
        for split, chosen in (("test", pool[:n_test]), ("val", pool[n_test:n_test + n_val]),
                              ("train", pool[n_test + n_val:])):
            parts[split].append(np.flatnonzero(in_pool & np.isin(units, chosen)))
        if has_test:
            parts["test"].append(np.flatnonzero(in_stratum & (decoded.split == "test")))
    return {split: np.sort(np.concatenate(chunks)).astype(np.int64) for split, chunks in parts.items()}
