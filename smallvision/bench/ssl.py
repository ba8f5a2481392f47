"""Pretraining throughput (images/s) of SSL recipes: a few timed optimiser steps each, on a
prepared dataset's training split, with the recipe's own batch size, views and device.

    python -m smallvision.bench.ssl <dataset> [ssl_recipe ...] [--steps N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from smallvision.core.errors import exits_cleanly
from smallvision.core.paths import RunPaths
from smallvision.core.prepared import PreparedData, load_prepared
from smallvision.ssl.base import PretrainConfig, Step
from smallvision.ssl.config import KnnConfig
from smallvision.ssl.pretrain import Pretrainer


def pretrain_throughput(recipe: PretrainConfig, data: PreparedData, steps: int = 3, warmup: int = 1) -> float:
    """Images per second over `steps` optimiser steps, after `warmup` untimed ones."""
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Pretrainer(recipe, data, None, KnnConfig(), RunPaths(Path(tmp), Path(tmp), Path(tmp)))
        trainer.method.train()
        batch = min(recipe.batch_size, len(trainer.images))
        total = warmup + steps
        for step in range(total):
            if step == warmup:
                _synchronise(trainer.device)
                start = time.perf_counter()
            index = torch.randperm(len(trainer.images), device=trainer.device, generator=trainer.generator)[:batch]
            trainer.train_step(index, Step(index=step, total=total, epoch=0))
        _synchronise(trainer.device)
        return steps * batch / (time.perf_counter() - start)


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@exits_cleanly
def main() -> None:
    from smallvision.ssl.config import load_ssl_params

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("ssl_recipes", nargs="*", help="default: every SSL recipe that trains")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    ssl = load_ssl_params()
    names = args.ssl_recipes or [name for name, recipe in ssl.recipes.items() if recipe.trains]
    data = load_prepared(args.dataset, splits=("train", "val"))
    print(f"{'SSL recipe':<16}{'method':<14}{'backbone':<20}{'batch':>6}{'images/s':>10}")
    for name in names:
        recipe = ssl.recipe(name)
        speed = pretrain_throughput(recipe, data, args.steps)
        row = f"{name:<16}{recipe.method:<14}{recipe.backbone.name:<20}{recipe.batch_size:>6}{speed:>10.1f}"
        print(row, flush=True)


if __name__ == "__main__":
    main()
