"""Atomic writes: a stage never leaves a half-written output behind (a full disk included: the
write is undone and the error names the output). Files read back later as weights are written
with a record of their checksum, and checked against it before they are used."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from smallvision.core.errors import DISK_FULL, DamagedFile, disk_full
from smallvision.core.paths import rebuild_advice


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; it replaces `path` only if the block succeeds."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; outputs get the usual mode
    try:
        with _undone_when_disk_full(final):
            yield tmp
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w") -> Iterator[Any]:
    """Open a temporary file beside `path` for writing; rename it over `path` on success."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; outputs get the usual mode
        with _undone_when_disk_full(final):
            with os.fdopen(fd, mode) as handle:
                yield handle
            os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def _undone_when_disk_full(final: Path) -> Iterator[None]:
    """A full disk while writing `final`: the caller's temporary copy goes, and the error says so."""
    try:
        yield
    except OSError as err:
        if err.errno not in DISK_FULL:
            raise
        raise disk_full(err, final) from None


DIGEST_SUFFIX = ".sha256"  # beside a checked file: its sha256, in sha256sum's format


def digest_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + DIGEST_SUFFIX)


def file_sha256(path: str | os.PathLike) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@contextlib.contextmanager
def checked_file(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """atomic_file for a file that is read back later (weights, a resume state): once it is written,
    the sha256 of its content is recorded beside it (<name>.sha256, which `sha256sum -c` reads too),
    and `verify` checks it before the file is used. A DVC output folder tracks the record with the
    file; DVC itself would not notice bytes changed in place. The record is written after the file:
    a kill between the two leaves a record that does not match, so the file is refused, never a
    damaged one taken."""
    with atomic_file(path, mode) as handle:
        yield handle
    with atomic_file(digest_path(path)) as handle:
        handle.write(f"{file_sha256(path)}  {Path(path).name}\n")


def verify(path: str | os.PathLike) -> None:
    """Raise DamagedFile, naming the file and what rebuilds it, unless `path` still has the sha256
    recorded when checked_file wrote it."""
    record = digest_path(path)
    if not record.exists():
        raise DamagedFile(path, f"has no record of its checksum ({record.name} is missing beside it), so "
                                "whether it is intact cannot be told", rebuild_advice(path))
    recorded = record.read_text().split()[:1]
    if recorded != [file_sha256(path)]:
        raise DamagedFile(path, f"is damaged: its content no longer matches the sha256 recorded in {record.name} "
                                "when it was written", rebuild_advice(path))


def write_json(path: str | os.PathLike, data: Any) -> None:
    with atomic_file(path) as handle:
        json.dump(data, handle, indent=2, sort_keys=False, default=_json_default)
        handle.write("\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as handle:
        return json.load(handle)


def _json_default(value: Any) -> Any:
    """numpy scalars and arrays in metrics: write them as plain numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def prune_empty_dirs(*roots: str | os.PathLike) -> None:
    """Remove the empty folders under `roots` (never a file). `dvc exp run` makes the parent
    folders of every stage's outputs before any stage runs, so a run whose params are then
    rejected would leave empty folders named after the typo, which a reader could take for
    an unfinished result."""
    for root in map(Path, roots):
        if not root.is_dir():
            continue
        for folder in sorted((p for p in root.rglob("*") if p.is_dir() and not p.is_symlink()),
                             key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()  # fails, and is left alone, unless the folder is empty
