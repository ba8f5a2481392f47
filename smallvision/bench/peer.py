"""A seed-style peer, for comparison only: torchvision ImageFolder + DataLoader, decoding
and transforming every image file in every epoch, as the seed notebooks did. It trains the
same model (same initial weights), with the same optimiser, schedule, loss, epochs and split,
so the wall-time ratio measures the data path and the loop, and the accuracies show that
nothing was traded for the speed. Like the seeds, it trains in fp32 (no autocast) and leaves
torch's and the C library's settings at their defaults (our loop's, bf16 on a CPU with bf16
arithmetic for the recipes that ask for it included, are in smallvision.models.device)."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from smallvision.core.prepared import PreparedData
from smallvision.fit.optim import make_optimizer, make_schedule
from smallvision.models.build import build_for_data
from smallvision.models.device import configure_threads, pick_device, seed_everything
from smallvision.train.early_stopping import EarlyStopping
from smallvision.train.losses import make_loss
from smallvision.train.validation import validation_metrics


def folder_loader(root: Path, files: list[str], size: int, recipe, train: bool, workers: int):
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    steps = [transforms.Resize((size, size))]
    if train and recipe.augment.translate:
        steps.append(transforms.RandomCrop(size, padding=recipe.augment.translate, padding_mode="reflect"))
    if train and recipe.augment.hflip:
        steps.append(transforms.RandomHorizontalFlip())
    steps.append(transforms.ToTensor())
    wanted = {str(Path(root) / f) for f in files}
    dataset = datasets.ImageFolder(str(root), transform=transforms.Compose(steps),
                                   is_valid_file=lambda path: path in wanted)
    return DataLoader(dataset, batch_size=recipe.batch_size if train else recipe.eval_batch_size, shuffle=train,
                      num_workers=workers, drop_last=train and len(dataset) > recipe.batch_size)


@torch.no_grad()
def predictions(model, loader, device) -> tuple[torch.Tensor, torch.Tensor]:
    model.eval()
    logits, labels = [], []
    for x, y in loader:
        logits.append(model(x.to(device)).float())
        labels.append(y.to(device))
    return torch.cat(logits), torch.cat(labels)


def train_peer(recipe, data: PreparedData, root: Path, workers: int) -> dict:
    """Train like a seed notebook; returns wall seconds (training + per-epoch validation +
    test) and the test accuracy of the epoch that the recipe's early_stopping.monitor picks, the
    rule our loop keeps its weights by (and stops early by, when the recipe says so)."""
    configure_threads(recipe.threads)
    seed_everything(recipe.seed)
    device = pick_device(recipe.device)
    start = time.perf_counter()
    model = build_for_data(recipe, data).to(device)
    train = folder_loader(root, data.files["train"], data.image_size, recipe, True, workers)
    val = folder_loader(root, data.files["val"], data.image_size, recipe, False, workers)
    test = folder_loader(root, data.files["test"], data.image_size, recipe, False, workers)
    optimizer = make_optimizer(model, recipe.optimizer)
    schedule = make_schedule(optimizer, recipe.scheduler, recipe.epochs, len(train), recipe.early_stopping.mode)
    counts = torch.bincount(torch.as_tensor(data["train"].labels), minlength=data.num_classes).float().to(device)
    loss_fn = make_loss(recipe.loss, counts, len(data["train"]), False)
    stopper, best_state = EarlyStopping(recipe.early_stopping), None
    for _ in range(recipe.epochs):
        model.train()
        for x, y in train:
            loss = loss_fn(model(x.to(device)), y.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.after_step()
        metrics = validation_metrics(*predictions(model, val, device), loss_fn, data.num_classes, False)
        monitored = metrics[recipe.early_stopping.monitor]  # as our loop computes and monitors them
        if stopper.update(monitored):
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        schedule.after_epoch(monitored)
        if stopper.should_stop():
            break
    model.load_state_dict(best_state)
    logits, labels = predictions(model, test, device)
    test_accuracy = (logits.argmax(1) == labels).float().mean().item()
    return {"wall_seconds": round(time.perf_counter() - start, 2), "test_accuracy": round(test_accuracy, 4),
            "workers": workers, "precision": "fp32"}
