"""Prepare throughput on one image folder: `python -m smallvision.bench.prepare ROOT`.

Runs the real prepare (scan, decode with the worker pool, split, save) into a temporary
folder and prints images/s and seconds, so a change to decoding can be measured."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from smallvision.data.prepare import prepare_dataset
from smallvision.options.dataset import DatasetConfig


def bench_prepare(root: Path, image_size: int = 32, workers: int = 0) -> dict:
    """Seconds and images/s of a full prepare of `root`, and of its decoding alone."""
    cfg = DatasetConfig(root=str(root), image_size=image_size, workers=workers)
    with tempfile.TemporaryDirectory(prefix="bench_prepare.") as tmp:
        start = time.perf_counter()
        summary = prepare_dataset("bench", cfg, Path(tmp) / "bench")
        seconds = time.perf_counter() - start
    return {
        "images": summary["images"],
        "workers": workers or os.cpu_count(),
        "seconds": round(seconds, 2),
        "images_per_second": round(summary["images"] / seconds, 1),
        "decode_seconds": summary["decode_seconds"],
        "decode_images_per_second": summary["images_per_second"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="an image folder (<class>/<image> or train/ and test/)")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0, help="decoding processes; 0 = all cores")
    args = parser.parse_args()
    result = bench_prepare(args.root, args.image_size, args.workers)
    print(
        f"prepare {args.root}: {result['images']} images in {result['seconds']:.1f} s = "
        f"{result['images_per_second']:.0f} images/s with {result['workers']} worker(s) "
        f"(decoding alone: {result['decode_seconds']:.1f} s, {result['decode_images_per_second']:.0f} images/s)"
    )


if __name__ == "__main__":
    main()
