"""The one training loop for every torch recipe.

The prepared uint8 arrays live on the training device for the whole run; batches are
gathered by index, augmented there and fed to the model, and metrics are summed on the
device and read once per epoch. An epoch ends with a checkpoint (once `checkpoint_seconds`
have passed since the last) that holds everything needed to continue exactly (model,
optimiser, schedule, lookahead average, early stopping, random states), so a killed run that
is started again resumes and ends with the metrics of an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from smallvision.augment import Augmenter
from smallvision.config import TorchRecipe
from smallvision.data.prepared import PreparedData
from smallvision.io import atomic_file, write_json
from smallvision.models import Classifier, build_model
from smallvision.models.classifier import parameter_count
from smallvision.paths import RunPaths
from smallvision.progress import log, progress
from smallvision.train import distributed
from smallvision.train.device import (
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
from smallvision.train.early_stopping import EarlyStopping
from smallvision.train.log import TrainLog
from smallvision.train.lookahead import Lookahead
from smallvision.train.losses import make_loss
from smallvision.train.optim import make_optimizer, make_schedule

STATE = "state.pt"  # in the resume folder: everything after the last finished epoch
BEST = "best.pt"  # model weights of the best epoch (what evaluation uses)
KILL_AFTER_EPOCH = "SMALLVISION_KILL_AFTER_EPOCH"  # tests: die like a killed job after epoch N


@dataclass
class Inputs:
    """What the loop feeds the trainable part: uint8 images, or embeddings computed once."""

    train: torch.Tensor
    val: torch.Tensor
    cached_features: bool


def dataset_statistics(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images, in [0, 1] units."""
    values = images.reshape(images.shape[0], images.shape[1], -1).astype(np.float64) / 255
    mean = values.mean(axis=(0, 2))
    std = values.std(axis=(0, 2)).clip(min=1e-3)
    return mean.tolist(), std.tolist()


def build_for_data(recipe: TorchRecipe, data: PreparedData, statistics: bool = True) -> Classifier:
    """The recipe's model for this data. Without `statistics` the normalisation buffers (and a
    whitening stem) are placeholders, for a model whose saved weights are loaded next; a backbone
    loaded from `backbone_init` keeps the stem it was saved with."""
    if statistics:
        mean, std = dataset_statistics(data["train"].images)
    else:
        mean, std = [0.5] * data.channels, [0.25] * data.channels
    model = build_model(recipe.model, data.channels, data.image_size, data.num_classes,
                        input_size=recipe.input_size, dataset_mean=mean, dataset_std=std, dataset=data.name)
    if statistics and model.whitening_stem is not None and not recipe.model.backbone_init:
        side = recipe.input_size or data.image_size  # the stem sees images resized to this
        sample = to_float_images(torch.as_tensor(fitting_sample(data["train"].images, side)))
        model.whitening_stem.fit(model.preprocess(sample))
    return model


def fitting_sample(images: np.ndarray, side: int, pixels: int = 5000 * 32 * 32) -> np.ndarray:
    """A fixed random pick of training images (prepare stores them by class), as many as make
    `pixels` pixels at the model's input side (5,000 at 32 px, as airbench): what a whitening
    stem is fitted to."""
    count = min(len(images), max(1, pixels // side ** 2))
    return images[np.sort(np.random.default_rng(0).choice(len(images), count, replace=False))]


def fingerprint(recipe: TorchRecipe, data: PreparedData) -> str:
    """Identifies the run a checkpoint belongs to: same recipe and same data, or start over."""
    digest = hashlib.blake2b(recipe.model_dump_json().encode(), digest_size=16)
    for split in ("train", "val"):
        digest.update(data[split].images.tobytes())
        digest.update(data[split].labels.tobytes())
    return digest.hexdigest()


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
        self.history: list[dict] = []
        self.best_state: dict = {}
        self.start_epoch = 0
        self.elapsed = self.setup_seconds

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
        self._resume()
        self.last_checkpoint = time.perf_counter()
        cfg = self.recipe
        stop_reason = None
        for epoch in range(self.start_epoch, cfg.epochs):
            start = time.perf_counter()
            metrics = self.train_epoch()
            metrics.update(self.validate())
            seconds = time.perf_counter() - start
            self.elapsed += seconds
            monitored = metrics.get(cfg.early_stopping.monitor, metrics["train_loss"])
            if self.stopper.update(monitored) or not self.has_val:
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.schedule.after_epoch(monitored)
            record = {"epoch": epoch + 1, **metrics, "lr": self.optimizer.param_groups[-1]["lr"],
                      "seconds": seconds}
            self.history.append(record)
            stop_reason = self.stopper.should_stop() if self.has_val else None
            if self.ranks.main:
                # After the last epoch the results replace the resume state at once.
                if not stop_reason and epoch + 1 < cfg.epochs and self._checkpoint_due():
                    self._save_state()
                self._log_epoch(record)
                log(_epoch_line(record))
            if os.environ.get(KILL_AFTER_EPOCH) == str(epoch + 1):
                os.kill(os.getpid(), signal.SIGKILL)
            if stop_reason:
                log(f"early stop after epoch {epoch + 1}: {stop_reason}")
                break
        if self.ranks.main:
            self._save_results()
        distributed.finish(self.ranks)
        return self._summary(stop_reason)

    # ------------------------------------------------------------ persistence
    def _save_results(self) -> None:
        """The run's output, written once it has ended; then its resume state goes. Only the best
        epoch's weights: nothing reads the last epoch's (and they doubled the disk a run takes)."""
        self.paths.model_dir.mkdir(parents=True, exist_ok=True)
        with atomic_file(self.paths.model_dir / BEST, "wb") as handle:
            torch.save(self.best_state, handle)
        shutil.rmtree(self.paths.resume_dir, ignore_errors=True)

    def _checkpoint_due(self) -> bool:
        """After an epoch, once `checkpoint_seconds` have passed since the run (re)started or last
        saved: a killed run repeats at most that much, and short epochs do not each write the
        whole state (the sprites `mlp`'s 100 MB took 0.13 s after each 0.5 s epoch)."""
        now = time.perf_counter()
        if now - self.last_checkpoint < self.recipe.checkpoint_seconds:
            return False
        self.last_checkpoint = now
        return True

    def _save_state(self) -> None:
        state = {
            "fingerprint": self.fingerprint,
            "epoch": len(self.history),
            "elapsed": self.elapsed,
            "model": self.model.state_dict(),
            "best_model": self.best_state,
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "lookahead": self.lookahead.state_dict() if self.lookahead else {},
            "early_stopping": self.stopper.state,
            "history": self.history,
            "order_generator": self.generator.get_state(),
            **random_states(self.augment_generator, self.rng, self.device),
        }
        self.paths.resume_dir.mkdir(parents=True, exist_ok=True)
        with atomic_file(self.paths.resume_dir / STATE, "wb") as handle:
            torch.save(state, handle)

    def _resume(self) -> None:
        """Continue a killed run of the same recipe on the same data; else start afresh."""
        self.fingerprint = fingerprint(self.recipe, self.data)
        path = self.paths.resume_dir / STATE
        state = torch.load(path, map_location=self.device, weights_only=True) if path.exists() else None
        if not state or state["fingerprint"] != self.fingerprint:
            if self.ranks.main:
                shutil.rmtree(self.paths.resume_dir, ignore_errors=True)
                self._reset_log()
            return
        self.model.load_state_dict(state["model"])
        self.best_state = state["best_model"]
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if self.lookahead:
            self.lookahead.load_state_dict(state["lookahead"])
        self.stopper = EarlyStopping(self.recipe.early_stopping, state["early_stopping"])
        self.history = list(state["history"])
        self.generator.set_state(state["order_generator"].cpu())
        restore_random_states(state, self.augment_generator, self.rng)
        self.elapsed = state["elapsed"]
        self.start_epoch = state["epoch"]
        if self.ranks.main:
            log(f"resuming from the checkpoint after epoch {self.start_epoch}")
            self._reset_log()
            for record in self.history:  # the log is rebuilt from the checkpoint, the single truth
                self._log_epoch(record)

    def _reset_log(self) -> None:
        self.train_log = TrainLog(self.paths.log_dir)

    def _log_epoch(self, record: dict) -> None:
        self.train_log.epoch(record)

    def _summary(self, stop_reason: str | None) -> dict:
        best = self.stopper.best_epoch if self.has_val else len(self.history) - 1
        return {
            "train_seconds": round(self.elapsed, 3),
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


def validation_metrics(logits: torch.Tensor, labels: torch.Tensor, loss_fn, num_classes: int,
                       multilabel: bool) -> dict:
    """The figures an epoch is monitored by (the benchmark's peer computes its own with this too)."""
    loss = loss_fn(logits, labels)
    if multilabel:
        predicted, truth = (logits > 0).long(), (labels > 0.5).long()
        accuracy = (predicted == truth).all(1).float().mean()
    else:
        predicted, truth = logits.argmax(1), labels
        accuracy = (predicted == truth).float().mean()
    f1 = macro_f1(predicted, truth, num_classes)
    return {"val_loss": loss.item(), "val_accuracy": accuracy.item(), "val_macro_f1": f1.item()}


def macro_f1(predicted: torch.Tensor, truth: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Macro F1 on the device (as scikit-learn: over classes that occur in truth or prediction)."""
    if truth.ndim == 2:  # multilabel 0/1 matrices: per-class counts down the columns
        tp = (predicted & truth).sum(0)
        fp = (predicted & (1 - truth)).sum(0)
        fn = ((1 - predicted) & truth).sum(0)
    else:
        counts = torch.bincount(truth * num_classes + predicted, minlength=num_classes ** 2)
        matrix = counts.view(num_classes, num_classes)
        tp = matrix.diag()
        fp, fn = matrix.sum(0) - tp, matrix.sum(1) - tp
    denominator = 2 * tp + fp + fn
    occurring = denominator > 0
    f1 = 2 * tp[occurring].float() / denominator[occurring].float()
    return f1.mean() if occurring.any() else torch.zeros((), device=truth.device)


def _epoch_line(record: dict) -> str:
    parts = [f"epoch {record['epoch']}"]
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        if key in record:
            parts.append(f"{key} {record[key]:.4f}")
    parts.append(f"{record['seconds']:.1f}s")
    return "  ".join(parts)


def train_torch(recipe: TorchRecipe, data: PreparedData, paths: RunPaths) -> dict | None:
    """Train and write train.json; under torchrun only the main process writes and returns."""
    paths.log_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(recipe, data, paths)
    summary = trainer.run()
    if not trainer.ranks.main:
        return None
    write_json(paths.log_dir / "train.json", summary)
    return summary
