"""Where each stage writes, per dataset and recipe (all DVC outputs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RAW = Path("data/raw")
PREPARED = Path("data/prepared")
MODELS = Path("data/models")
RESUME = Path("data/resume")  # unfinished runs' full state: not a result, deleted when a run ends
TRAIN_LOGS = Path("reports/train")
EVAL = Path("reports/eval")
REPORT = Path("reports")


def model_dir(dataset: str, recipe: str) -> Path:
    return MODELS / dataset / recipe


def train_log_dir(dataset: str, recipe: str) -> Path:
    return TRAIN_LOGS / dataset / recipe


def eval_dir(dataset: str, recipe: str) -> Path:
    return EVAL / dataset / recipe


@dataclass(frozen=True)
class RunPaths:
    """Where one dataset x recipe run writes: results (DVC outputs) and its resume state."""

    model_dir: Path
    log_dir: Path
    resume_dir: Path


def run_paths(dataset: str, recipe: str) -> RunPaths:
    return RunPaths(model_dir(dataset, recipe), train_log_dir(dataset, recipe), RESUME / dataset / recipe)
