"""Find the images of a dataset root and their classes, before any decoding.

Folders whose name starts with "." (`.hidden`, `...`, `.ipynb_checkpoints`) are left out, as are
class folders that are symbolic links to images listed already (to the root itself, a folder
above it, or another class folder): their images would be counted twice, under two classes.
Both are listed in the listing, which prepare writes to prepare.json and the log, never dropped
without a word."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from smallvision.core.errors import UserError
from smallvision.data.images import IMAGE_EXTENSIONS, is_image_file
from smallvision.sources.base import ARRAYS_FILE

SPLIT_DIRS = ("train", "test")


@dataclass
class FolderListing:
    """Image files by class; `split` is 'train'/'test' per file when the folder fixes it.
    `hidden_folders`: hidden folders left out that hold image files, with how many (by extension);
    `linked_class_folders`: class folders left out as links to images listed already, with their target
    (both relative to the root)."""

    root: Path
    classes: list[str]
    files: list[Path]
    labels: list[int]
    split: list[str] | None
    ignored: list[str] = field(default_factory=list)
    hidden_folders: dict[str, int] = field(default_factory=dict)
    linked_class_folders: dict[str, str] = field(default_factory=dict)


def is_arrays_root(root: Path) -> bool:
    return (root / ARRAYS_FILE).is_file()


def scan_folder(root: Path, where: str) -> FolderListing:
    """`root/<class>/**/<image>`, or `root/train/<class>/...` plus `root/test/<class>/...`."""
    if not root.is_dir():
        raise UserError(f"{where}: folder not found: {root} (give an image folder with one subfolder per class)")
    left_out = FolderListing(root, [], [], [], None)  # collects the folders left out, as they are found
    if all((root / name).is_dir() for name in SPLIT_DIRS):
        _note_hidden(root, [p for p in root.iterdir() if p.is_dir() and p.name.startswith(".")], left_out)
        train = _scan_classes(root / "train", where, left_out)
        test = _scan_classes(root / "test", where, left_out)
        unknown = sorted(set(test) - set(train))
        if unknown:
            raise UserError(f"{where}: {root}/test has classes missing from train/: {', '.join(unknown[:5])}")
        classes = sorted(train)
        parts = [(train, "train"), (test, "test")]
    else:
        by_class = _scan_classes(root, where, left_out)
        classes = sorted(by_class)
        parts = [(by_class, None)]
    listing = FolderListing(root, classes, [], [], None if parts[0][1] is None else [],
                            hidden_folders=left_out.hidden_folders, linked_class_folders=left_out.linked_class_folders)
    for by_class, split in parts:
        for index, name in enumerate(classes):
            images, ignored = by_class.get(name, ([], []))
            listing.files += images
            listing.labels += [index] * len(images)
            listing.ignored += ignored
            if split is not None:
                listing.split += [split] * len(images)
    return listing


def _scan_classes(folder: Path, where: str, left_out: FolderListing) -> dict[str, tuple[list[Path], list[str]]]:
    """The image files of each class folder of `folder` (and its other files); what is left out is
    noted in `left_out`."""
    folders = sorted(p for p in folder.iterdir() if p.is_dir())
    _note_hidden(left_out.root, [p for p in folders if p.name.startswith(".")], left_out)
    class_dirs = _without_linked_duplicates([p for p in folders if not p.name.startswith(".")], left_out)
    if not class_dirs:
        raise UserError(
            f"{where}: {folder} has no class subfolders; expected <root>/<class>/<image> "
            "or <root>/train/<class>/<image> with <root>/test/..."
        )
    found = {}
    for class_dir in class_dirs:
        images, ignored = [], []
        for dirpath, dirnames, filenames in os.walk(class_dir):
            _note_hidden(left_out.root, [Path(dirpath) / d for d in dirnames if d.startswith(".")], left_out)
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


def _note_hidden(root: Path, folders: list[Path], left_out: FolderListing) -> None:
    """Hidden folders that hold image files (by extension: they are not opened), with their count."""
    for folder in folders:
        count = sum(Path(name).suffix.lower() in IMAGE_EXTENSIONS
                    for _, _, names in os.walk(folder) for name in names)
        if count:
            left_out.hidden_folders[str(folder.relative_to(root))] = count


def _without_linked_duplicates(class_dirs: list[Path], left_out: FolderListing) -> list[Path]:
    """The class folders less those that are symbolic links to a folder whose images are listed
    already: the dataset's folder itself or one above it, or a folder holding, or held by, another
    class folder. Real folders come first, so a link never displaces the folder it points to; a
    link elsewhere (a dataset assembled from links) is a class like any other."""
    top = class_dirs[0].parent.resolve() if class_dirs else None
    kept, targets = [], []
    for class_dir in sorted(class_dirs, key=lambda path: (path.is_symlink(), path.name)):
        target = class_dir.resolve()
        if class_dir.is_symlink() and (target == top or target in top.parents
                                       or any(_nested(target, other) for other in targets)):
            left_out.linked_class_folders[str(class_dir.relative_to(left_out.root))] = str(target)
            continue
        kept.append(class_dir)
        targets.append(target)
    return sorted(kept)


def _nested(a: Path, b: Path) -> bool:
    """Whether one folder is the other or holds it."""
    return a == b or a in b.parents or b in a.parents
