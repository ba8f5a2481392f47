"""What a run that survives a kill needs, shared by the training loop and SSL pretraining.

A run keeps its per-epoch records here. After an epoch (once `checkpoint_seconds` have
passed since the run started or last saved) the owner's state - model, optimiser, schedule,
random states: whatever continues the run exactly - is saved with those records in the
run's resume folder. A run started again with the same fingerprint (recipe and data)
continues from there and rebuilds its log from the saved records; any other starts afresh.
When the run ends, its owner writes the results, then `finish()` marks the log complete and
deletes the resume folder.

    run = ResumableRun(paths, fingerprint(recipe, images, labels), device, checkpoint_seconds=60)
    state = run.resume()              # None: start afresh; else restore the owner's parts from it
    for epoch in range(run.start_epoch, epochs):
        ...
        run.record({"epoch": epoch + 1, ..., "seconds": seconds})
        run.end_epoch(epoch + 1, last=epoch + 1 == epochs, state=lambda: {"model": ...})
    ...write the results...
    run.finish()
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import time
from typing import Callable

import numpy as np
import torch

from smallvision.core.errors import DamagedFile, UserError
from smallvision.core.paths import RunPaths
from smallvision.core.progress import log
from smallvision.fit.log import TrainLog
from smallvision.models.weights import load_weights, save_weights

STATE = "state.pt"  # in the resume folder: everything after the last saved epoch
SET_ASIDE = ".damaged"  # a resume folder whose state is damaged is moved to <folder>.damaged

# The figures of an epoch's log line, with their formats (those a record lacks are left out).
LINE_FIELDS = (("train_loss", ".4f"), ("train_accuracy", ".4f"), ("val_loss", ".4f"), ("val_accuracy", ".4f"),
               ("val_knn_accuracy", ".4f"), ("embedding_spread", ".3f"), ("embedding_rank", ".1f"),
               ("images_per_second", ".1f"), ("seconds", ".1f"))


def fingerprint(recipe, *arrays: np.ndarray) -> str:
    """Identifies the run a checkpoint belongs to: the same recipe and the same data, or start over."""
    digest = hashlib.blake2b(recipe.model_dump_json().encode(), digest_size=16)
    for array in arrays:
        digest.update(array.tobytes())
    return digest.hexdigest()


def epoch_line(record: dict) -> str:
    """One line per epoch for the console: the epoch and the figures of LINE_FIELDS it has."""
    return "  ".join([f"epoch {record['epoch']}"]
                     + [f"{key} {record[key]:{fmt}}" for key, fmt in LINE_FIELDS if record.get(key) is not None])


class ResumableRun:
    """The records, log, checkpoint timing and resume state of one run. `main`: whether this
    process writes (under torchrun only rank 0 logs and saves; every process resumes);
    `elapsed`: seconds already spent before the first epoch (setup)."""

    def __init__(self, paths: RunPaths, fingerprint: str, device: torch.device, *, checkpoint_seconds: float = 0.0,
                 main: bool = True, elapsed: float = 0.0):
        self.paths, self.fingerprint, self.device = paths, fingerprint, device
        self.checkpoint_seconds, self.main = checkpoint_seconds, main
        self.history: list[dict] = []
        self.elapsed = elapsed
        self.start_epoch = 0  # epochs done before this process started
        self.train_log: TrainLog | None = None
        self.last_checkpoint = time.perf_counter()

    def resume(self) -> dict | None:
        """The saved state of a killed run with this fingerprint (its history, elapsed time and
        epoch are taken over here; the owner restores the rest from it), or None to start afresh.
        Either way the log starts over, from the saved records."""
        state = self._saved_state()
        if state and state["fingerprint"] != self.fingerprint:
            state = None
        if self.main:
            if state is None:
                shutil.rmtree(self.paths.resume_dir, ignore_errors=True)
            self.train_log = TrainLog(self.paths.log_dir)
        if state is not None:
            self.history = list(state["history"])
            self.elapsed = state["elapsed"]
            self.start_epoch = state["epoch"]
            if self.main:
                log(f"resuming from the checkpoint after epoch {self.start_epoch}")
                for record in self.history:  # the log is rebuilt from the checkpoint, the single truth
                    self.train_log.epoch(record)
        self.last_checkpoint = time.perf_counter()
        return state

    def _saved_state(self) -> dict | None:
        """The resume state, if there is one and it is intact. A damaged one (its checksum differs,
        or it cannot be read) would stop every rerun: the main process sets its folder aside, with
        a line in the log, and the run starts afresh."""
        path = self.paths.resume_dir / STATE
        if not path.exists():
            return None
        try:
            return load_weights(path, map_location=self.device)
        except DamagedFile as err:
            if self.main:
                aside = self.paths.resume_dir.with_name(self.paths.resume_dir.name + SET_ASIDE)
                shutil.rmtree(aside, ignore_errors=True)
                os.replace(self.paths.resume_dir, aside)
                log(f"the resume state {path} {err.problem}: set aside as {aside / STATE}; the run starts afresh")
            return None

    def record(self, record: dict) -> None:
        """One epoch's figures ({'epoch': n, ..., 'seconds': s}): kept (every checkpoint holds
        them), its seconds added to the elapsed time, and in the main process logged. A loss that
        is not finite stops the run (see diverged)."""
        self.require_finite_losses(record)
        self.history.append(record)
        self.elapsed += record.get("seconds") or 0.0
        if self.main:
            self.train_log.epoch(record)
            log(epoch_line(record))

    def end_epoch(self, done: int, last: bool, state: Callable[[], dict]) -> None:
        """After epoch `done` (from 1) has been recorded: save `state()` when a checkpoint is due,
        unless the run ends here (its results replace the resume state at once)."""
        if self.main and not last and self.checkpoint_due():
            self.save(done, state())
        self.after_epoch(done)

    def after_epoch(self, done: int) -> None:
        """Called in every process once epoch `done` is recorded and any checkpoint saved: a
        point to stop at (tests kill a run here, as a killed job dies); nothing by default."""

    def checkpoint_due(self) -> bool:
        """Once `checkpoint_seconds` have passed since the run (re)started or last saved: a killed
        run repeats at most that much, and short epochs do not each write the whole state (the
        sprites `mlp`'s 100 MB took 0.13 s after each 0.5 s epoch). 0: after every epoch."""
        now = time.perf_counter()
        if now - self.last_checkpoint < self.checkpoint_seconds:
            return False
        self.last_checkpoint = now
        return True

    def save(self, done: int, state: dict) -> None:
        """The owner's `state` after epoch `done`, with this run's records, atomically."""
        full = {"fingerprint": self.fingerprint, "epoch": done, "elapsed": self.elapsed, "history": self.history,
                **state}
        self.paths.resume_dir.mkdir(parents=True, exist_ok=True)
        save_weights(full, self.paths.resume_dir / STATE)

    def require_finite_losses(self, record: dict) -> None:
        """Stop the run if a loss in the epoch's `record` is NaN or infinite (an owner may check before
        recording, when what it would measure next cannot be computed on such weights)."""
        for key, value in record.items():
            if key.endswith("loss") and value is not None and not math.isfinite(value):
                raise self.diverged(f"its {key.replace('_', ' ')} is {value} in epoch {record['epoch']}", record)

    def require_finite(self, weights: dict[str, torch.Tensor]) -> None:
        """Before the owner writes its results: weights holding a NaN or infinity are no result
        (a last step can diverge after its loss was measured)."""
        broken = [name for name, tensor in weights.items()
                  if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
        if broken:
            shown = ", ".join(broken[:3]) + (f" and {len(broken) - 3} more" if len(broken) > 3 else "")
            raise self.diverged(f"its weights hold values that are not finite after epoch {len(self.history)} "
                                f"({shown})", self.history[-1] if self.history else {})

    def diverged(self, what: str, record: dict) -> UserError:
        """The error that stops a run whose training diverged: the log says the run is not
        complete (its metrics.json, even before a first epoch), nothing is written as its result,
        and the message says what to change."""
        if self.main and self.train_log is not None:
            self.train_log.stopped()
        lr = f"; {record['lr']:.3g} in that epoch" if isinstance(record.get("lr"), float) else ""
        return UserError(f"run {self.paths.log_dir}: {what}: the training diverged. Lower its recipe's learning "
                         f"rate (optimizer.lr{lr}) and rerun; the run is left incomplete (its metrics.json says "
                         "complete: false) and no model was written")

    def finish(self) -> None:
        """Once the owner has written the run's results: the log says the run is complete, and
        the resume state goes."""
        if self.main:
            if self.train_log is not None:
                self.train_log.finish()
            shutil.rmtree(self.paths.resume_dir, ignore_errors=True)
