"""torchvision's CIFAR-10 and CIFAR-100: torchvision downloads the archive and checks its MD5;
it is unpacked with the one safe extractor, and torchvision checks every batch file's MD5
again while loading. Stored as arrays.npz with torchvision's own train/test split."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

import numpy as np

from smallvision.core.errors import UserError
from smallvision.options.schema import Strict
from smallvision.sources.base import ARRAYS_FILE, SOURCES
from smallvision.sources.download import safe_extract


@SOURCES.register("torchvision")
class TorchvisionSource(Strict):
    kind: Literal["torchvision"]
    dataset: Literal["CIFAR10", "CIFAR100"] = "CIFAR10"

    def fetch(self, out_dir: Path) -> dict:
        from torchvision import datasets

        return fetch_cifar(getattr(datasets, self.dataset), out_dir)


def fetch_cifar(dataset_class, out_dir: Path) -> dict:
    """Download, verify and convert a torchvision CIFAR dataset class (its `url`, `filename`,
    `tgz_md5` and per-file checksums say what to fetch) into out_dir/arrays.npz."""
    from torchvision.datasets.utils import download_url

    scratch = out_dir / ".download"
    what = f"{dataset_class.__name__} from {dataset_class.url}"
    try:
        download_url(dataset_class.url, str(scratch), dataset_class.filename, dataset_class.tgz_md5)
    except RuntimeError:  # torchvision's checksum test failed
        raise UserError(f"download of {what} is truncated or corrupt (its MD5 checksum does not match); "
                        "run the stage again") from None
    except OSError as err:  # urllib's URLError and HTTPError are OSErrors
        raise UserError(f"cannot download {what}: {getattr(err, 'reason', err)}. "
                        "Check the network connection (and proxy settings)") from None
    safe_extract(scratch / dataset_class.filename, scratch)
    try:
        parts = [dataset_class(str(scratch), train=train, download=False) for train in (True, False)]
    except RuntimeError as err:
        raise UserError(f"{what}: the archive's files fail torchvision's checksums ({err})") from None
    np.savez(
        out_dir / ARRAYS_FILE,
        images=np.concatenate([part.data for part in parts]).astype(np.uint8),
        labels=np.concatenate([np.asarray(part.targets, dtype=np.int64) for part in parts]),
        class_names=np.array(parts[0].classes),
        split=np.array(["train"] * len(parts[0].data) + ["test"] * len(parts[1].data)),
    )
    shutil.rmtree(scratch)
    return {"images": sum(len(part.data) for part in parts), "classes": len(parts[0].classes),
            "train": len(parts[0].data), "test": len(parts[1].data)}
