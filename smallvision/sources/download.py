"""What every downloading source shares: an HTTP download that notices truncation, archive
extraction that cannot write outside its target, and installing an extracted image folder."""

from __future__ import annotations

import http.client
import os
import stat
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath

from smallvision.core.errors import UserError
from smallvision.core.io import atomic_file
from smallvision.core.progress import progress
from smallvision.data.images import is_image_file

USER_AGENT = "smallvision (https://github.com/smallvision)"
CHUNK_BYTES = 1 << 20
IGNORED_DIRS = ("__MACOSX",)  # resource forks that macOS zips carry beside the data
SPLIT_DIRS = ("train", "test")  # an image root with a fixed split (see smallvision.data.scan)


def download(url: str, dest: Path, what: str, timeout: float = 60) -> Path:
    """Stream `url` to `dest` (written atomically). Fewer bytes than the server announced,
    an HTTP error or an unreachable host is a UserError naming `what` and the URL."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, atomic_file(dest, "wb") as out:
            expected = response.headers.get("Content-Length")
            received = 0
            with progress(total=int(expected) if expected else None, desc=dest.name, unit="B",
                          unit_scale=True) as bar:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            if expected is not None and received != int(expected):
                raise UserError(
                    f"download of {what} from {url} is truncated: got {received} of {expected} bytes. "
                    "The connection was cut; run the stage again"
                )
    except urllib.error.HTTPError as err:
        hint = " (check the name and the base URL)" if err.code == 404 else ""
        raise UserError(f"cannot download {what}: {url} answered HTTP {err.code} {err.reason}{hint}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        reason = getattr(err, "reason", None) or err
        raise UserError(
            f"cannot download {what} from {url}: {reason}. Check the network connection (and proxy settings)"
        ) from None
    return dest


def safe_extract(archive: Path, dest: Path) -> Path:
    """Unpack a zip or tar archive into `dest`. Every member is checked before anything is
    written: absolute paths, `..`, links and device files are refused, so a hostile archive
    cannot write outside `dest`. A truncated or corrupt archive is a UserError."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as bundle:
                for member in bundle.infolist():
                    _check_member(member.filename, archive, dest, is_link=_zip_member_is_link(member))
                bundle.extractall(dest)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as bundle:
                for member in bundle.getmembers():
                    special = not (member.isfile() or member.isdir())
                    _check_member(member.name, archive, dest, is_link=special)
                bundle.extractall(dest, filter="data")
        else:
            raise UserError(
                f"{archive.name} is not a complete zip or tar archive (a truncated or failed download?); "
                "run the stage again"
            )
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as err:
        raise UserError(f"{archive.name} is truncated or corrupt ({err}); run the stage again") from None
    return dest


def _zip_member_is_link(member: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(member.external_attr >> 16)


def _check_member(name: str, archive: Path, dest: Path, is_link: bool) -> None:
    unsafe = _unsafe_reason(name, dest, is_link)
    if unsafe:
        raise UserError(
            f"{archive.name}: member '{name}' {unsafe}; refusing to extract an archive that could write "
            f"outside {dest}. Check where the archive comes from"
        )


def _unsafe_reason(name: str, dest: Path, is_link: bool) -> str | None:
    # Windows paths too: an archive made there may hold `C:\x` or `..\x`.
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if is_link:
        return "is a link or special file"
    if posix.is_absolute() or windows.is_absolute() or windows.drive or windows.root:
        return "has an absolute path"
    if ".." in windows.parts or not (dest / name).resolve().is_relative_to(dest.resolve()):
        return "leaves the target folder"
    return None


def install_image_folder(extracted: Path, out_dir: Path, subdir: str | None, what: str) -> dict:
    """Move the image folder found in `extracted` into `out_dir`, which becomes the source's
    root, and count it. The image folder is `subdir` when given, else the first folder
    below `extracted` that does not just wrap a single other folder (archives often
    nest their data, e.g. PokemonData/<class>/ or car_data/car_data/train/)."""
    if subdir and _unsafe_reason(subdir, extracted, is_link=False):
        raise UserError(f"{what}: subdir '{subdir}' must be a folder inside the download")
    root = extracted / subdir if subdir else _unwrap(extracted)
    if not root.is_dir():
        found = ", ".join(sorted(p.name for p in extracted.iterdir())[:10])
        raise UserError(f"{what}: the download has no folder '{subdir}' (its top level holds: {found})")
    images = sum(1 for path in root.rglob("*") if path.is_file() and is_image_file(path))
    if images == 0:
        raise UserError(f"{what} holds no images (looked in {root.relative_to(extracted)}/); "
                        "check the dataset name, or set subdir to the folder that holds the class folders")
    for entry in root.iterdir():
        if entry.name not in IGNORED_DIRS:
            os.replace(entry, out_dir / entry.name)
    return {"images": images, "classes": _count_classes(out_dir)}


def _unwrap(folder: Path) -> Path:
    while True:
        subdirs = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
                   and p.name not in IGNORED_DIRS]
        if len(subdirs) != 1 or subdirs[0].name in SPLIT_DIRS:
            return folder
        folder = subdirs[0]


def _count_classes(root: Path) -> int:
    split = root / "train" if all((root / name).is_dir() for name in SPLIT_DIRS) else root
    return sum(1 for p in split.iterdir() if p.is_dir() and not p.name.startswith("."))
