"""Loop efficiency: the training loop's images/s over the model's raw step images/s.

Raw = forward, loss, backward and optimiser step on one batch that is already a float
tensor on the device, repeated (same model, batch size, precision and device). The loop adds
what training really needs: gathering the batch from the resident uint8 data, augmentation,
the schedule and on-device metric sums. An efficiency near 1 means the loop costs nothing
beyond the model's own arithmetic."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from smallvision.data.prepared import PreparedData
from smallvision.paths import RunPaths
from smallvision.train.loop import Trainer


def make_trainer(recipe, data: PreparedData, folder: Path) -> Trainer:
    paths = RunPaths(folder / "model", folder / "log", folder / "resume")
    trainer = Trainer(recipe, data, paths)
    trainer._reset_log()
    return trainer


def timed_epochs(trainer: Trainer, epochs: int) -> float:
    """Seconds for `epochs` training passes, after one warm-up pass (allocator, kernels, caches)."""
    trainer.train_epoch()
    _sync(trainer.device)
    start = time.perf_counter()
    for _ in range(epochs):
        trainer.train_epoch()
    _sync(trainer.device)
    return time.perf_counter() - start


def raw_images_per_second(trainer: Trainer, steps: int) -> float:
    """The same model, loss, optimiser and batch size, fed one resident float batch."""
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

    for _ in range(2):
        step()
    _sync(trainer.device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(trainer.device)
    return steps * batch / (time.perf_counter() - start)


def measure(recipe, data: PreparedData, epochs: int = 2) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(recipe, data, Path(tmp))
        seconds = timed_epochs(trainer, epochs)
        images = epochs * trainer.steps_per_epoch * min(trainer.recipe.batch_size, len(trainer.train_labels))
        loop = images / seconds
        raw = raw_images_per_second(trainer, steps=epochs * trainer.steps_per_epoch)
    return {
        "loop_images_per_second": round(loop, 1),
        "raw_images_per_second": round(raw, 1),
        "loop_efficiency": round(loop / raw, 3),
        "train_seconds_per_epoch": round(seconds / epochs, 2),
        "device": str(trainer.device),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
