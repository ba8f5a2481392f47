"""The one pretraining loop for every self-supervised method.

Like the training loop: the uint8 images live on the device, batches are gathered by index
and turned into views there, and an epoch ends by saving, in the run's resume folder, all
that is needed to continue exactly (method with heads, teacher and loss state, optimiser,
schedule, random states): after every epoch, or once `checkpoint_seconds` have passed since
the last where the recipe has that setting (smallvision.fit.resumable, as the training
loop). A killed run that is started again resumes from it. At the end the backbone alone is
saved as a plain state dict (what `model.backbone_init` loads) and the resume folder goes.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from smallvision.core.io import write_json
from smallvision.core.paths import RunPaths
from smallvision.core.prepared import PreparedData
from smallvision.core.progress import progress
from smallvision.fit.optim import make_optimizer, make_schedule
from smallvision.fit.resumable import ResumableRun, fingerprint
from smallvision.models.build import dataset_statistics
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
from smallvision.options.dataset import DatasetConfig
from smallvision.ssl.base import PretrainConfig, Step
from smallvision.ssl.config import BACKBONE_FILE, KnnConfig
from smallvision.ssl.encoder import Encoder
from smallvision.ssl.knn import (
    effective_rank,
    embed_images,
    embedding_spread,
    knn_accuracies,
)
from smallvision.ssl.views import ViewMaker

SUMMARY = "pretrain.json"


class Pretrainer:
    def __init__(self, recipe: PretrainConfig, data: PreparedData, extra_images: np.ndarray | None,
                 knn: KnnConfig, paths: RunPaths):
        self.recipe, self.data, self.knn, self.paths = recipe, data, knn, paths
        configure_threads(recipe.threads)
        seed_everything(recipe.seed)
        self.device = resolve_device(recipe.device)
        self.bf16 = use_bf16(recipe.precision, self.device)
        self.channels_last = use_channels_last(recipe.channels_last, self.device)

        train = data["train"].images
        unlabeled = train if extra_images is None else np.concatenate([train, extra_images])
        self.images = torch.as_tensor(unlabeled, device=self.device)
        self.size = recipe.input_size or data.image_size
        # The fine-tune model normalises with the labelled training split's statistics: so does this.
        encoder = Encoder(recipe.backbone, data.channels, self.size, *dataset_statistics(train))
        self.epochs = recipe.epochs if recipe.trains else 0
        self.total_steps = max(1, self.epochs * self.steps_per_epoch)
        self.method = recipe.build(encoder, len(self.images)).to(self.device)
        if self.channels_last:
            self.method = self.method.to(memory_format=torch.channels_last)
        self.generator = torch.Generator(device=self.device).manual_seed(stream_seed(recipe.seed, "views"))
        self.rng = np.random.default_rng(stream_seed(recipe.seed, "view_batches"))
        self.views = ViewMaker(recipe.views, self.generator, self.rng)
        self.optimizer = make_optimizer(self.method, recipe.optimizer)
        self.schedule = make_schedule(self.optimizer, recipe.scheduler, max(1, self.epochs), self.steps_per_epoch,
                                      "min")
        # history[0] is the check before training. An SSL recipe without `checkpoint_seconds`
        # saves its resume state after every epoch.
        self.resumable = ResumableRun(
            paths, fingerprint(recipe, unlabeled, data["val"].images), self.device,
            checkpoint_seconds=getattr(recipe, "checkpoint_seconds", 0.0))

    @property
    def history(self) -> list[dict]:
        """The check before training, then one record per epoch (a resumed run's from its start)."""
        return self.resumable.history

    @property
    def steps_per_epoch(self) -> int:
        """Full batches only (a last batch of one image would break batch norm)."""
        return max(1, len(self.images) // self.recipe.batch_size)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()

    def _prepare(self, views: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.channels_last:
            return [view.contiguous(memory_format=torch.channels_last) for view in views]
        return views

    # -------------------------------------------------------------- training
    def train_epoch(self, epoch: int) -> dict:
        self.method.train()
        if self.recipe.bn_stats == "frozen":
            for module in self.method.modules():
                if isinstance(module, Encoder):  # the student's and any teacher's; heads keep theirs
                    module.freeze_batchnorm()
        batch, steps = self.recipe.batch_size, self.steps_per_epoch
        order = torch.randperm(len(self.images), device=self.device, generator=self.generator)
        loss_sum = torch.zeros((), device=self.device)
        seen = 0
        start = time.perf_counter()
        for step in progress(range(steps), desc=f"epoch {epoch + 1}", unit="batch"):
            index = order[step * batch:(step + 1) * batch]
            loss_sum += self.train_step(index, Step(index=epoch * steps + step, total=self.total_steps, epoch=epoch))
            seen += len(index)
        seconds = time.perf_counter() - start
        return {"train_loss": (loss_sum / steps).item(), "images_per_second": seen / seconds, "seconds": seconds}

    def train_step(self, index: torch.Tensor, at: Step) -> torch.Tensor:
        """One optimiser step on the images at `index`; returns the loss (on the device)."""
        images = to_float_images(self.images[index])
        views = self._prepare(self.method.make_views(images, self.views, self.size))
        with self._autocast():
            loss = self.method.loss(views, at)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.method.before_optimizer_step(at)
        self.optimizer.step()
        self.schedule.after_step()
        self.method.after_optimizer_step(at)
        return loss.detach()

    @torch.no_grad()
    def monitor(self) -> dict:
        """kNN accuracy of the validation split against the labelled training split (labels are
        used here only, never in training), and the spread and effective rank of the features
        (collapse checks: to a point, and to a few directions).
        With `bn_stats: recalibrate`, batch norm's running statistics are first measured on the
        plain training images; the last check comes before the backbone is saved, so the saved
        backbone carries them."""
        encoder = self.method.exported
        batch = self.recipe.eval_batch_size
        val = self.data["val"]
        train = torch.as_tensor(self.data["train"].images, device=self.device)
        with self._autocast():
            if self.recipe.bn_stats == "recalibrate":
                encoder.recalibrate_batchnorm(train, batch)
            encoder.eval()
            bank = embed_images(encoder.embed, train, batch)
            if len(val):  # a dataset prepared without a validation split has only the spread
                queries = embed_images(encoder.embed, torch.as_tensor(val.images, device=self.device), batch)
        self.method.train()
        metrics = {"embedding_spread": embedding_spread(bank), "embedding_rank": effective_rank(bank)}
        if len(val):
            accuracies = knn_accuracies(bank, torch.as_tensor(self.data["train"].labels, device=self.device), queries,
                                        val.labels, self.data.num_classes, self.knn.k[:1])
            metrics["val_knn_accuracy"] = next(iter(accuracies.values()))
        return metrics

    def run(self) -> dict:
        state = self.resumable.resume()
        if state is not None:
            self.method.load_state_dict(state["method"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.schedule.load_state_dict(state["schedule"])
            restore_random_states(state, self.generator, self.rng)
        else:
            self.resumable.record({"epoch": 0, **self.monitor()})
        for epoch in range(self.resumable.start_epoch, self.epochs):
            record = {"epoch": epoch + 1, **self.train_epoch(epoch), "lr": self.optimizer.param_groups[0]["lr"]}
            self.resumable.require_finite_losses(record)  # before the check: its SVD fails on NaN features
            if (epoch + 1) % self.recipe.monitor_every == 0 or epoch + 1 == self.epochs:
                record.update(self.monitor())
            self.resumable.record(record)
            self.resumable.end_epoch(epoch + 1, last=epoch + 1 == self.epochs, state=self._state)
        summary = self._summary()
        self._save_results(summary)
        self.resumable.finish()
        return summary

    # ------------------------------------------------------------ persistence
    def _state(self) -> dict:
        """What the resume state holds beside the run's records: all that continues it exactly."""
        return {
            "method": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            **random_states(self.generator, self.rng, self.device),
        }

    def _save_results(self, summary: dict) -> None:
        """The backbone alone and the summary, once the run has ended."""
        backbone = self.method.exported.backbone.state_dict()
        self.resumable.require_finite(backbone)
        self.paths.model_dir.mkdir(parents=True, exist_ok=True)
        save_weights(backbone, self.paths.model_dir / BACKBONE_FILE)
        write_json(self.paths.model_dir / SUMMARY, summary)

    def _summary(self) -> dict:
        trained = [record for record in self.history if "train_loss" in record]
        images = sum(record["images_per_second"] * record["seconds"] for record in trained)
        elapsed = self.resumable.elapsed
        return {
            "method": self.recipe.method,
            "backbone": self.recipe.backbone.model_dump(),
            "view_size": self.size,
            "images": len(self.images),
            "epochs_run": len(trained),
            "pretrain_seconds": round(elapsed, 3),
            "pretrain_images_per_second": round(images / elapsed, 1) if elapsed else None,
            "device": str(self.device),
            "bf16": self.bf16,
            "start": self.history[0],
            "final": self.history[-1],
        }


def load_extra_images(folder: str, dataset: DatasetConfig, where: str) -> np.ndarray:
    """Every image under `folder` (recursively) as uint8 (N, C, H, W), decoded once before any
    epoch at the dataset's size, colour and resize (a derived dataset's edits do not apply)."""
    from smallvision.core.errors import UserError
    from smallvision.data.images import BadImage, is_image_file, load_image

    root = Path(folder)
    files = sorted(p for p in root.rglob("*") if p.is_file() and is_image_file(p)) if root.is_dir() else []
    if not files:
        raise UserError(f"{where}.extra_images: no images found under {folder}; give a folder of images or null")
    try:
        images = [load_image(path, dataset.image_size, dataset.color, dataset.resize)
                  for path in progress(files, desc="decode extra images", unit="img")]
    except BadImage as err:
        raise UserError(f"{where}.extra_images: {err}; fix or delete the file") from None
    return np.stack(images).transpose(0, 3, 1, 2).copy()


def pretrain(recipe: PretrainConfig, data: PreparedData, extra_images: np.ndarray | None, knn: KnnConfig,
             paths: RunPaths) -> dict:
    paths.log_dir.mkdir(parents=True, exist_ok=True)
    return Pretrainer(recipe, data, extra_images, knn, paths).run()
