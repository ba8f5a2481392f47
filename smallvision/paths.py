"""Where each stage writes, per dataset and recipe (all DVC outputs)."""

from __future__ import annotations

from pathlib import Path

RAW = Path("data/raw")
PREPARED = Path("data/prepared")
MODELS = Path("data/models")
TRAIN_LOGS = Path("reports/train")
EVAL = Path("reports/eval")
REPORT = Path("reports")


def model_dir(dataset: str, recipe: str) -> Path:
    return MODELS / dataset / recipe


def train_log_dir(dataset: str, recipe: str) -> Path:
    return TRAIN_LOGS / dataset / recipe


def eval_dir(dataset: str, recipe: str) -> Path:
    return EVAL / dataset / recipe
