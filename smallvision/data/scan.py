"""Find the images of a dataset root and their classes, before any decoding."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from smallvision.core.errors import UserError
from smallvision.data.images import is_image_file
from smallvision.sources.base import ARRAYS_FILE

SPLIT_DIRS = ("train", "test")


@dataclass
class FolderListing:
    """Image files by class; `split` is 'train'/'test' per file when the folder fixes it."""

    root: Path
    classes: list[str]
    files: list[Path]
    labels: list[int]
    split: list[str] | None
    ignored: list[str] = field(default_factory=list)


def is_arrays_root(root: Path) -> bool:
    return (root / ARRAYS_FILE).is_file()


def scan_folder(root: Path, where: str) -> FolderListing:
    """`root/<class>/**/<image>`, or `root/train/<class>/...` plus `root/test/<class>/...`."""
    if not root.is_dir():
        raise UserError(f"{where}: folder not found: {root} (give an image folder with one subfolder per class)")
    if all((root / name).is_dir() for name in SPLIT_DIRS):
        train = _scan_classes(root / "train", where)
        test = _scan_classes(root / "test", where)
        unknown = sorted(set(test) - set(train))
        if unknown:
            raise UserError(f"{where}: {root}/test has classes missing from train/: {', '.join(unknown[:5])}")
        classes = sorted(train)
        parts = [(train, "train"), (test, "test")]
    else:
        by_class = _scan_classes(root, where)
        classes = sorted(by_class)
        parts = [(by_class, None)]
    listing = FolderListing(root, classes, [], [], None if parts[0][1] is None else [])
    for by_class, split in parts:
        for index, name in enumerate(classes):
            images, ignored = by_class.get(name, ([], []))
            listing.files += images
            listing.labels += [index] * len(images)
            listing.ignored += ignored
            if split is not None:
                listing.split += [split] * len(images)
    return listing


def _scan_classes(folder: Path, where: str) -> dict[str, tuple[list[Path], list[str]]]:
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise UserError(
            f"{where}: {folder} has no class subfolders; expected <root>/<class>/<image> "
            "or <root>/train/<class>/<image> with <root>/test/..."
        )
    found = {}
    for class_dir in class_dirs:
        images, ignored = [], []
        for dirpath, dirnames, filenames in os.walk(class_dir):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                path = Path(dirpath) / filename
                (images if is_image_file(path) else ignored).append(path)
        if not images:
            others = f" ({len(ignored)} other file(s), e.g. {ignored[0].name})" if ignored else ""
            raise UserError(
                f"{where}: class folder {class_dir} holds no images{others}; JPEG, PNG, BMP, GIF, WebP or TIFF "
                "files count, whatever their extension. Remove the folder or add images"
            )
        found[class_dir.name] = (images, [str(p) for p in ignored])
    return found
