"""Loop efficiency: the training loop's images/s over the model's raw step images/s.

Raw = forward, loss, backward and optimiser step on one batch that is already a float
tensor on the device, repeated (same model, batch size, precision and device). The loop adds
what training really needs: gathering the batch from the resident uint8 data, augmentation,
the schedule and on-device metric sums. An efficiency near 1 means the loop costs nothing
beyond the model's own arithmetic. Both sides are timed in epoch-sized rounds after a warm-up,
and each keeps its fastest round: on a shared machine a slow round is another process's doing."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from smallvision.core.paths import RunPaths
from smallvision.core.prepared import PreparedData
from smallvision.train.loop import Trainer


def make_trainer(recipe, data: PreparedData, folder: Path) -> Trainer:
    paths = RunPaths(folder / "model", folder / "log", folder / "resume")
    return Trainer(recipe, data, paths)


def fastest_epoch(trainer: Trainer, epochs: int) -> float:
    """Seconds of the fastest of `epochs` training passes, after one warm-up pass (allocator,
    kernels, caches)."""
    trainer.train_epoch()
    return min(_timed(trainer.device, trainer.train_epoch) for _ in range(epochs))


def raw_images_per_second(trainer: Trainer, rounds: int) -> float:
    """The same model, loss, optimiser and batch size, fed one resident float batch: the
    fastest of `rounds` rounds of one epoch's steps."""
    batch = min(trainer.recipe.batch_size, len(trainer.train_labels))
    x = trainer.inputs.train[:batch]
    x = x if trainer.inputs.cached_features else trainer._prepare(x)
    y = trainer.train_labels[:batch]
    trainer.model.train()

    def step():
        with trainer._autocast():
            loss = trainer.loss_fn(trainer.forward(x).float(), y)
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        trainer.optimizer.step()

    def one_round():
        for _ in range(trainer.steps_per_epoch):
            step()

    for _ in range(2):
        step()
    seconds = min(_timed(trainer.device, one_round) for _ in range(rounds))
    return trainer.steps_per_epoch * batch / seconds


def measure(recipe, data: PreparedData, epochs: int = 3) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(recipe, data, Path(tmp))
        seconds = fastest_epoch(trainer, epochs)
        loop = trainer.steps_per_epoch * min(trainer.recipe.batch_size, len(trainer.train_labels)) / seconds
        raw = raw_images_per_second(trainer, rounds=epochs)
    return {
        "loop_images_per_second": round(loop, 1),
        "raw_images_per_second": round(raw, 1),
        "loop_efficiency": round(loop / raw, 3),
        "train_seconds_per_epoch": round(seconds, 4),
        "device": str(trainer.device),
    }


def _timed(device: torch.device, work) -> float:
    _sync(device)
    start = time.perf_counter()
    work()
    _sync(device)
    return time.perf_counter() - start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
