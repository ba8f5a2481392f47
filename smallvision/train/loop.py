"""The one training loop for every torch recipe.

The prepared uint8 arrays live on the training device for the whole run; batches are
gathered by index, augmented there and fed to the model, and metrics are summed on the
device and read once per epoch. An epoch ends with a checkpoint (once `checkpoint_seconds`
have passed since the last; smallvision.fit.resumable) that holds everything needed to
continue exactly (model, optimiser, schedule, lookahead average, early stopping, random
states), so a killed run that is started again resumes and ends with the metrics of an
uninterrupted one.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from smallvision.core.io import write_json
from smallvision.core.paths import BEST, RunPaths
from smallvision.core.prepared import PreparedData
from smallvision.core.progress import log, progress
from smallvision.fit.augment import Augmenter
from smallvision.fit.optim import make_optimizer, make_schedule
from smallvision.fit.resumable import ResumableRun, fingerprint
from smallvision.models.build import build_for_data
from smallvision.models.classifier import parameter_count
from smallvision.models.device import (
    configure_threads,
    random_states,
    resolve_device,
    restore_random_states,
    seed_everything,
    stream_seed,
    to_float_images,
    use_bf16,
    use_channels_last,
)
from smallvision.models.weights import save_weights
from smallvision.options.params import TorchRecipe
from smallvision.train import distributed
from smallvision.train.early_stopping import EarlyStopping
from smallvision.train.lookahead import Lookahead
from smallvision.train.losses import make_loss
from smallvision.train.validation import validation_metrics


@dataclass
class Inputs:
    """What the loop feeds the trainable part: uint8 images, or embeddings computed once."""

    train: torch.Tensor
    val: torch.Tensor
    cached_features: bool


class Trainer:
    def __init__(self, recipe: TorchRecipe, data: PreparedData, paths: RunPaths):
        self.recipe, self.data, self.paths = recipe, data, paths
        configure_threads(recipe.threads)
        seed_everything(recipe.seed)
        # CPU kernels used here are deterministic as they are; torch.use_deterministic_algorithms
        # would cost seconds of imports per stage (the resume test checks exact equality).
        self.ranks, self.device = distributed.start(resolve_device(recipe.device))
        self.bf16 = use_bf16(recipe.precision, self.device)
        self.channels_last = use_channels_last(recipe.channels_last, self.device)
        self.multilabel = data.multilabel

        self.model = build_for_data(recipe, data).to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        # The batch order is the same in every process; augmentation draws differ per process.
        self.generator = torch.Generator(device=self.device).manual_seed(stream_seed(recipe.seed, "order"))
        self.augment_generator = torch.Generator(device=self.device).manual_seed(
            stream_seed(recipe.seed, "augment", self.ranks.rank))
        self.rng = np.random.default_rng(stream_seed(recipe.seed, "mix", self.ranks.rank))
        self.augmenter = Augmenter(recipe.augment, self.augment_generator, self.rng)

        self.train_labels = self._labels(data["train"].labels)
        self.val_labels = self._labels(data["val"].labels)
        self.has_val = len(self.val_labels) > 0
        self.inputs = self._inputs()
        trainable = self.model.head if self.inputs.cached_features else self.model
        trainable = distributed.wrap(trainable, self.ranks, self.device)
        self.forward = torch.compile(trainable) if recipe.compile else trainable

        steps = self.steps_per_epoch
        self.optimizer = make_optimizer(self.model, recipe.optimizer)
        self.schedule = make_schedule(self.optimizer, recipe.scheduler, recipe.epochs, steps,
                                      recipe.early_stopping.mode)
        self.lookahead = Lookahead(self.model, recipe.lookahead, recipe.epochs * steps) if recipe.lookahead else None
        self.loss_fn = make_loss(recipe.loss, self._class_counts(), len(self.train_labels), self.multilabel)
        self.stopper = EarlyStopping(recipe.early_stopping)
        self.best_state: dict = {}
        self.resumable = ResumableRun(
            paths, fingerprint(recipe, data["train"].images, data["train"].labels, data["val"].images,
                               data["val"].labels),
            self.device, checkpoint_seconds=recipe.checkpoint_seconds, main=self.ranks.main,
            elapsed=self.setup_seconds)

    @property
    def history(self) -> list[dict]:
        """The records of the epochs run so far (a resumed run's from its start)."""
        return self.resumable.history

    # ----------------------------------------------------------------- data
    def _inputs(self) -> Inputs:
        start = time.perf_counter()
        train = torch.as_tensor(self.data["train"].images, device=self.device)
        val = torch.as_tensor(self.data["val"].images, device=self.device)
        cached = (self.model.backbone_frozen and self.recipe.cache_frozen_features
                  and not self.recipe.augment.enabled)
        if cached:
            # A frozen backbone without augmentation sees the same images every epoch:
            # embed them once and train only the head.
            train, val = self._embed(train, "embed train"), self._embed(val, "embed val")
        self.setup_seconds = time.perf_counter() - start
        return Inputs(train, val, cached)

    @torch.no_grad()
    def _embed(self, images: torch.Tensor, desc: str) -> torch.Tensor:
        self.model.eval()
        batch = self.recipe.eval_batch_size
        chunks = [
            self.model.features(self._prepare(images[i:i + batch])).float()
            for i in progress(range(0, len(images), batch), desc=desc)
        ]
        return torch.cat(chunks) if chunks else images.new_zeros((0,))

    def _labels(self, labels: np.ndarray) -> torch.Tensor:
        """Class indices, or float 0/1 vectors for multilabel targets."""
        tensor = torch.as_tensor(labels, device=self.device)
        return tensor.float() if self.multilabel else tensor

    def _prepare(self, batch: torch.Tensor) -> torch.Tensor:
        batch = to_float_images(batch)
        return batch.contiguous(memory_format=torch.channels_last) if self.channels_last else batch

    def _class_counts(self) -> torch.Tensor:
        labels = self.train_labels
        if self.multilabel:
            return labels.float().sum(0)
        return torch.bincount(labels, minlength=self.data.num_classes).float()

    @property
    def steps_per_epoch(self) -> int:
        n, batch = len(self.train_labels), self.recipe.batch_size
        return max(1, n // batch if n > batch else 1)

    def _order(self) -> torch.Tensor:
        """Indices of one epoch: a shuffle, or a class-balanced draw with replacement."""
        n = len(self.train_labels)
        if self.recipe.sampler == "balanced":
            inverse = 1.0 / self._class_counts().clamp(min=1)
            if self.multilabel:  # an image counts as rare as the mean of its labels
                weights = (self.train_labels * inverse).sum(1) / self.train_labels.sum(1).clamp(min=1)
            else:
                weights = inverse[self.train_labels]
            return torch.multinomial(weights, n, replacement=True, generator=self.generator)
        return torch.randperm(n, device=self.device, generator=self.generator)

    # -------------------------------------------------------------- training
    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()

    def train_epoch(self) -> dict:
        self.model.train()
        if self.inputs.cached_features:
            self.model.backbone.eval()
        order = self._order()
        batch = self.recipe.batch_size
        steps = self.steps_per_epoch
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        seen = 0
        for step in progress(range(steps), desc=f"epoch {len(self.history) + 1}", unit="batch"):
            # The last partial batch is dropped (one image would break batch norm).
            index = distributed.shard(order[step * batch:(step + 1) * batch], self.ranks)
            x, y = self.inputs.train[index], self.train_labels[index]
            if not self.inputs.cached_features:
                x = self.augmenter.images(self._prepare(x))
            x, y = self.augmenter.mix(x, y, self.data.num_classes)
            with self._autocast():
                logits = self.forward(x)
                loss = self.loss_fn(logits.float(), y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.schedule.after_step()
            if self.lookahead:
                self.lookahead.after_step()
            loss_sum += loss.detach() * len(index)
            correct += self._correct(logits.detach(), y)
            seen += len(index)
        sums = distributed.total(torch.stack([loss_sum, correct, torch.tensor(float(seen), device=self.device)]),
                                 self.ranks)
        return {"train_loss": (sums[0] / sums[2]).item(), "train_accuracy": (sums[1] / sums[2]).item()}

    def _correct(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.multilabel:  # exact match of the label set (MixUp targets are rounded)
            return ((logits > 0) == (targets > 0.5)).all(1).sum()
        if targets.ndim == 2:  # MixUp/CutMix soft targets: credit the dominant class
            targets = targets.argmax(1)
        return (logits.argmax(1) == targets).sum()

    @torch.no_grad()
    def validate(self) -> dict:
        if not self.has_val:
            return {}
        self.model.eval()
        batch = self.recipe.eval_batch_size
        logits = []
        for i in range(0, len(self.val_labels), batch):
            x = self.inputs.val[i:i + batch]
            if not self.inputs.cached_features:
                x = self._prepare(x)
            with self._autocast():
                logits.append(self._evaluated(x).float())
        return validation_metrics(torch.cat(logits), self.val_labels, self.loss_fn, self.data.num_classes,
                                  self.multilabel)

    def _evaluated(self, x: torch.Tensor) -> torch.Tensor:
        """Validation bypasses DDP: every process holds the same synchronised weights."""
        return self.model.head(x) if self.inputs.cached_features else self.model(x)

    def run(self) -> dict:
        """Train (resuming a killed run of the same recipe on the same data), then write the
        best epoch's weights and train.json; returns the summary."""
        self._resume()
        cfg = self.recipe
        stop_reason = None
        for epoch in range(self.resumable.start_epoch, cfg.epochs):
            start = time.perf_counter()
            metrics = self.train_epoch()
            metrics.update(self.validate())
            seconds = time.perf_counter() - start
            monitored = metrics.get(cfg.early_stopping.monitor, metrics["train_loss"])
            if self.stopper.update(monitored) or not self.has_val:
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.schedule.after_epoch(monitored)
            self.resumable.record({"epoch": epoch + 1, **metrics, "lr": self.optimizer.param_groups[-1]["lr"],
                                   "seconds": seconds})
            stop_reason = self.stopper.should_stop() if self.has_val else None
            self.resumable.end_epoch(epoch + 1, last=bool(stop_reason) or epoch + 1 == cfg.epochs,
                                     state=self._state)
            if stop_reason:
                log(f"early stop after epoch {epoch + 1}: {stop_reason}")
                break
        summary = self._summary(stop_reason)
        if self.ranks.main:
            self._save_results(summary)
        self.resumable.finish()
        distributed.finish(self.ranks)
        return summary

    # ------------------------------------------------------------ persistence
    def _save_results(self, summary: dict) -> None:
        """The run's output, written once it has ended. Only the best epoch's weights: nothing
        reads the last epoch's (and they doubled the disk a run takes)."""
        self.resumable.require_finite(self.best_state)
        self.paths.model_dir.mkdir(parents=True, exist_ok=True)
        save_weights(self.best_state, self.paths.model_dir / BEST)
        self.paths.log_dir.mkdir(parents=True, exist_ok=True)
        write_json(self.paths.log_dir / "train.json", summary)

    def _state(self) -> dict:
        """What the resume state holds beside the run's records: all that continues it exactly."""
        return {
            "model": self.model.state_dict(),
            "best_model": self.best_state,
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "lookahead": self.lookahead.state_dict() if self.lookahead else {},
            "early_stopping": self.stopper.state,
            "order_generator": self.generator.get_state(),
            **random_states(self.augment_generator, self.rng, self.device),
        }

    def _resume(self) -> None:
        """Continue a killed run of the same recipe on the same data; else start afresh."""
        state = self.resumable.resume()
        if state is None:
            return
        self.model.load_state_dict(state["model"])
        self.best_state = state["best_model"]
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if self.lookahead:
            self.lookahead.load_state_dict(state["lookahead"])
        self.stopper = EarlyStopping(self.recipe.early_stopping, state["early_stopping"])
        self.generator.set_state(state["order_generator"].cpu())
        restore_random_states(state, self.augment_generator, self.rng)

    def _summary(self, stop_reason: str | None) -> dict:
        best = self.stopper.best_epoch if self.has_val else len(self.history) - 1
        return {
            "train_seconds": round(self.resumable.elapsed, 3),
            "epochs_run": len(self.history),
            "best_epoch": best + 1,
            "stopped_early": stop_reason,
            "device": str(self.device),
            "processes": self.ranks.world,
            "bf16": self.bf16,
            "cached_frozen_features": self.inputs.cached_features,
            **parameter_count(self.model),
            "final": self.history[-1] if self.history else {},
        }


def train_torch(recipe: TorchRecipe, data: PreparedData, paths: RunPaths) -> dict | None:
    """Train, writing best.pt and train.json; under torchrun only the main process writes and returns."""
    paths.log_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(recipe, data, paths)
    summary = trainer.run()
    return summary if trainer.ranks.main else None
