"""Time to a target test accuracy, airbench's way: train a recipe `--runs` times (seeds 0, 1, ...)
through the one training loop on the whole training split, and report each run's training
seconds and final test accuracy (with the recipe's test-time augmentation). The target counts
as reached when the mean accuracy over the runs reaches it; the time is the mean training time.

  python -m smallvision.bench.target --folder ../shared/data/cifar10 --recipe cifar_fast --runs 5
  python -m smallvision.bench.target --folder DIR --recipe cifar_fast --set epochs=12 --set batch_size=1024

The folder is decoded once (with its train/ and test/ split, no validation split: a run
trains on every training image, as airbench does) into --cache when given, reused next time.
One untimed warm-up epoch comes first, so start-up costs (cuDNN autotuning, allocator) stay
out of the figures. Training seconds are the loop's own: epochs and the copy of the data to
the device, not the per-epoch checkpoints or the final test pass."""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from smallvision.core.errors import UserError, exits_cleanly
from smallvision.core.io import write_json
from smallvision.core.paths import BEST, RunPaths
from smallvision.core.prepared import load_prepared
from smallvision.core.progress import log
from smallvision.data.prepare import prepare_dataset
from smallvision.inference import TorchPredictor
from smallvision.models.metrics import accuracy
from smallvision.options.params import (
    DatasetConfig,
    TorchRecipe,
    _validate,
    load_params,
)
from smallvision.train.loop import Trainer


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m smallvision.bench.target", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, required=True, help="image folder with train/ and test/ (or <class>/)")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--recipe", required=True, help="a torch recipe of params.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe key (dotted, YAML value), e.g. optimizer.lr=0.1")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--target", type=float, default=0.94)
    parser.add_argument("--cache", type=Path, help="keep the decoded arrays here and reuse them")
    parser.add_argument("--out", type=Path, default=Path("reports/bench_target.json"))
    return parser.parse_args(argv)


def overridden(recipe: TorchRecipe, settings: list[str], name: str) -> TorchRecipe:
    """The recipe with `key.sub=value` settings applied (a value replaces what was there, a
    mapping included), validated like params.yaml."""
    values = recipe.model_dump(mode="json", exclude={"reference", "notes"})
    for setting in settings:
        key, sep, value = setting.partition("=")
        if not sep or not key:
            raise UserError(f"--set {setting}: write KEY=VALUE, e.g. --set epochs=12")
        node = values
        *parents, leaf = key.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise UserError(f"--set {setting}: recipe {name} has no mapping '{part}'")
            node = node[part]
        node[leaf] = yaml.safe_load(value)
    return _validate(TorchRecipe, values, where=f"recipes.{name} (--set)")


def prepared(folder: Path, image_size: int, cache: Path | None, tmp: Path):
    target = cache or tmp / "prepared"
    if not (target / "classes.json").exists():
        cfg = DatasetConfig(root=str(folder), image_size=image_size, val_fraction=0.0)
        prepare_dataset("target", cfg, target)
    return load_prepared("target", folder=target)


def train_and_test(recipe: TorchRecipe, data, folder: Path) -> tuple[dict, float]:
    """Train through the one loop into `folder`; the training summary and the test accuracy of
    the weights it kept (with the recipe's test-time augmentation)."""
    paths = RunPaths(folder / "model", folder / "log", folder / "resume")
    summary = Trainer(recipe, data, paths).run()
    scores = TorchPredictor(recipe, data, paths.model_dir / BEST).scores(data["test"].images, recipe.eval_batch_size)
    return summary, accuracy(data["test"].labels, scores, data.multilabel)


def ours_end_to_end(recipe: TorchRecipe, cfg: DatasetConfig, folder: Path) -> dict:
    """Our pipeline on an image folder, timed from the files: decode once, train from memory, test."""
    start = time.perf_counter()
    prepare_dataset("bench_e2e", cfg, folder / "prepared")
    data = load_prepared("bench_e2e", folder=folder / "prepared")
    summary, correct = train_and_test(recipe, data, folder)
    return {"wall_seconds": round(time.perf_counter() - start, 2), "test_accuracy": round(correct, 4),
            "precision": "bf16" if summary["bf16"] else "fp32"}


def one_run(recipe: TorchRecipe, data, folder: Path) -> dict:
    summary, test_accuracy = train_and_test(recipe, data, folder)
    return {"seed": recipe.seed, "train_seconds": summary["train_seconds"], "epochs": summary["epochs_run"],
            "test_accuracy": round(test_accuracy, 4), "device": summary["device"], "bf16": summary["bf16"]}


def measure(recipe: TorchRecipe, data, runs: int, tmp: Path) -> list[dict]:
    one_run(recipe.model_copy(update={"epochs": 1}), data, tmp / "warmup")
    results = []
    for seed in range(runs):
        result = one_run(recipe.model_copy(update={"seed": seed}), data, tmp / f"run{seed}")
        log(f"run {seed}: {result['train_seconds']:.2f}s, test accuracy {result['test_accuracy']:.4f}")
        results.append(result)
    return results


def summarise(results: list[dict], target: float) -> dict:
    accuracies = [r["test_accuracy"] for r in results]
    seconds = [r["train_seconds"] for r in results]
    mean = statistics.fmean(accuracies)
    return {
        "mean_test_accuracy": round(mean, 4),
        "std_test_accuracy": round(statistics.stdev(accuracies), 4) if len(results) > 1 else 0.0,
        "mean_train_seconds": round(statistics.fmean(seconds), 2),
        "target": target,
        "reached": mean >= target,
    }


@exits_cleanly
def main(argv=None) -> None:
    args = parse(argv)
    if not args.folder.is_dir():
        raise UserError(f"--folder {args.folder} is not a folder")
    recipe = load_params().recipe(args.recipe)
    if not isinstance(recipe, TorchRecipe):
        raise UserError(f"--recipe {args.recipe}: not a torch recipe (method {recipe.method}); the loop times torch recipes")
    recipe = overridden(recipe, args.set, args.recipe)
    os.environ.setdefault("CI", "1")  # no progress bars inside the measurements
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = prepared(args.folder, args.image_size, args.cache, tmp)
        results = measure(recipe, data, args.runs, tmp)
    summary = summarise(results, args.target)
    write_json(args.out, {"recipe": args.recipe, "set": args.set, "folder": str(args.folder),
                          "train_images": len(data["train"].labels), "test_images": len(data["test"].labels),
                          "runs": results, **summary})
    verdict = "reached" if summary["reached"] else "not reached"
    print(f"{args.recipe} {' '.join(args.set)}: mean test accuracy {summary['mean_test_accuracy']:.4f} "
          f"(std {summary['std_test_accuracy']:.4f}, {len(results)} runs) in {summary['mean_train_seconds']:.2f}s "
          f"of training on {results[0]['device']}; target {args.target:.2f} {verdict}")


if __name__ == "__main__":
    main()
