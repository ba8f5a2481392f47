"""Measure and print the project's speed figures; write them to reports/bench.json.

  python -m smallvision.bench [--folder DIR] [--image-size 64] [--recipes cnn effnet_finetune]
                              [--epochs 3] [--compare-recipes cnn effnet_probe] [--compare-epochs N]
                              [--compare-seeds 1]

1. prepare throughput (images/s) decoding the folder once;
2. loop efficiency per recipe: training-loop images/s / raw model-step images/s;
3. the seed-style ImageFolder + DataLoader peer against our pipeline, per compared recipe:
   wall time and accuracy (means over --compare-seeds seeds), each side in a fresh process (a
   frozen backbone shows the seeds' transfer setting, where the peer runs the backbone on
   freshly decoded images every epoch);
4. seconds per training epoch per recipe.
The folder defaults to ../shared/data/pokemon-sprites-gen1 when present, else the digits."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from smallvision.bench.fresh import in_fresh_process
from smallvision.bench.loop_efficiency import measure
from smallvision.bench.peer import train_peer
from smallvision.bench.target import ours_end_to_end
from smallvision.core.errors import UserError, exits_cleanly
from smallvision.core.io import write_json
from smallvision.core.prepared import load_prepared
from smallvision.core.progress import log
from smallvision.data.prepare import prepare_dataset
from smallvision.options.params import DatasetConfig, load_params

SPRITES = Path("../shared/data/pokemon-sprites-gen1")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m smallvision.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, help="image folder (<class>/<image>) to benchmark on")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--recipes", nargs="+", default=["cnn", "effnet_finetune"])
    parser.add_argument("--epochs", type=int, default=3,
                        help="timed epochs per recipe after one warm-up, and as many rounds of raw steps: the fastest counts")
    parser.add_argument("--input-size", type=int, help="override the recipes' model input size")
    parser.add_argument("--compare-recipes", nargs="+", default=["cnn", "effnet_probe"])
    parser.add_argument("--compare-epochs", type=int, help="epochs of the compared runs (default: each recipe's own)")
    parser.add_argument("--compare-seeds", type=int, default=1,
                        help="seeds 0..N-1 of each compared run: accuracies differ by a few points from seed to seed")
    parser.add_argument("--peer-workers", type=int, default=2, help="DataLoader workers of the peer")
    parser.add_argument("--skip", nargs="*", default=[], choices=["prepare", "loop", "peer"])
    parser.add_argument("--out", type=Path, default=Path("reports/bench.json"))
    return parser.parse_args()


def dataset(args, tmp: Path) -> tuple[str, DatasetConfig, dict]:
    """Prepare the benchmark's dataset once (timed: that is the prepare figure)."""
    folder = args.folder or (SPRITES if SPRITES.is_dir() else None)
    if folder is None:
        from smallvision.sources.digits import DigitsSource

        folder = tmp / "digits"
        folder.mkdir()
        DigitsSource(kind="sklearn_digits").fetch(folder)
    if not Path(folder).is_dir():
        raise UserError(f"--folder {folder} is not a folder")
    cfg = DatasetConfig(root=str(folder), image_size=args.image_size)
    summary = prepare_dataset("bench", cfg, tmp / "prepared")
    return str(folder), cfg, summary


def with_overrides(recipe, args, epochs: int | None):
    update = {"epochs": epochs} if epochs else {}
    if args.input_size:
        update["input_size"] = args.input_size
    return recipe.model_copy(update=update)


def compare_with_peer(name: str, params, args, data, cfg: DatasetConfig, folder: Path, tmp: Path) -> dict:
    """Both sides at seeds 0..N-1; the speedup is the ratio of their total wall times."""
    recipe = with_overrides(params.recipe(name), args, args.compare_epochs)
    runs: dict[str, list[dict]] = {"ours": [], "imagefolder_dataloader": []}
    for seed in range(args.compare_seeds):
        seeded = recipe.model_copy(update={"seed": seed})
        peer = in_fresh_process(train_peer, seeded, data, folder, args.peer_workers)
        ours = in_fresh_process(ours_end_to_end, seeded, cfg, tmp / f"{name}_seed{seed}")
        runs["imagefolder_dataloader"].append(peer)
        runs["ours"].append(ours)
        log(f"{name} seed {seed}: ours {ours['wall_seconds']:.1f}s, accuracy {ours['test_accuracy']:.4f}; "
            f"ImageFolder+DataLoader {peer['wall_seconds']:.1f}s, accuracy {peer['test_accuracy']:.4f}")
    sides = {side: mean_of(side_runs) for side, side_runs in runs.items()}
    ours, peer = sides["ours"], sides["imagefolder_dataloader"]
    speedup = round(peer["wall_seconds"] / ours["wall_seconds"], 2)
    difference = paired_difference(runs["ours"], runs["imagefolder_dataloader"])
    seeds = f", mean of {args.compare_seeds} seeds" if args.compare_seeds > 1 else ""
    log(f"{name} x {recipe.epochs} epochs{seeds}: ours {ours['wall_seconds']:.1f}s ({runs['ours'][0]['precision']}, "
        f"accuracy {ours['test_accuracy']:.4f}) vs ImageFolder+DataLoader {peer['wall_seconds']:.1f}s "
        f"({runs['imagefolder_dataloader'][0]['precision']}, accuracy {peer['test_accuracy']:.4f}): "
        f"{speedup:.1f}x faster; accuracy difference {difference['mean']:+.4f}"
        + (f" (standard error {difference['standard_error']:.4f})" if difference["standard_error"] is not None else ""))
    return {"epochs": recipe.epochs, "seeds": args.compare_seeds, **sides, "speedup": speedup,
            "accuracy_difference": difference}


def mean_of(runs: list[dict]) -> dict:
    """Mean wall time and test accuracy over seeds, with each seed's figures."""
    return {"wall_seconds": round(statistics.fmean(r["wall_seconds"] for r in runs), 2),
            "test_accuracy": round(statistics.fmean(r["test_accuracy"] for r in runs), 4),
            "runs": runs}


def paired_difference(ours: list[dict], peer: list[dict]) -> dict:
    """Our test accuracy minus the peer's, seed by seed: the mean and its standard error (a seed's
    two runs share the split and initial weights, so pairing them removes part of the noise)."""
    differences = [a["test_accuracy"] - b["test_accuracy"] for a, b in zip(ours, peer, strict=True)]
    error = statistics.stdev(differences) / len(differences) ** 0.5 if len(differences) > 1 else None
    return {"mean": round(statistics.fmean(differences), 4),
            "standard_error": None if error is None else round(error, 4),
            "ours_higher": sum(d > 0 for d in differences), "ours_lower": sum(d < 0 for d in differences)}


@exits_cleanly
def main() -> None:
    args = parse()
    params = load_params()
    os.environ.setdefault("CI", "1")  # no progress bars inside the measurements
    results: dict = {"device": None, "arguments": {k: str(v) for k, v in vars(args).items()}}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        folder, cfg, prepared = dataset(args, tmp)
        results["dataset"] = {"folder": folder, "images": prepared["images"], "classes": prepared["classes"],
                              "image_size": args.image_size}
        if "prepare" not in args.skip:
            results["prepare"] = {"images_per_second": prepared["images_per_second"],
                                  "seconds": prepared["decode_seconds"], "workers": os.cpu_count()}
            log(f"prepare: {prepared['images']} images in {prepared['decode_seconds']:.2f}s = "
                f"{prepared['images_per_second']:.0f} images/s")
        data = load_prepared("bench", folder=tmp / "prepared")
        if "loop" not in args.skip:
            results["loop"] = {}
            for name in args.recipes:
                figures = measure(with_overrides(params.recipe(name), args, args.epochs), data, args.epochs)
                results["loop"][name] = figures
                results["device"] = figures["device"]
                log(f"{name}: loop {figures['loop_images_per_second']:.0f} images/s, raw "
                    f"{figures['raw_images_per_second']:.0f} images/s, efficiency {figures['loop_efficiency']:.2f}, "
                    f"{figures['train_seconds_per_epoch']:.2f} s/epoch")
        if "peer" not in args.skip and not Path(folder, "arrays.npz").exists():
            results["peer"] = {name: compare_with_peer(name, params, args, data, cfg, Path(folder), tmp)
                               for name in args.compare_recipes}
    write_json(args.out, results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
