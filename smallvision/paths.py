"""Where each stage writes, per dataset, recipe and seed (all DVC outputs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RAW = Path("data/raw")
PREPARED = Path("data/prepared")
MODELS = Path("data/models")
RESUME = Path("data/resume")  # unfinished runs' full state: not a result, deleted when a run ends
TRAIN_LOGS = Path("reports/train")
EVAL = Path("reports/eval")
PREPARE_METRICS = Path("reports/prepare")  # per dataset: decode time and throughput
REPORT = Path("reports")


def seed_folder(seed: int) -> str:
    return f"s{seed}"


def model_dir(dataset: str, recipe: str, seed: int) -> Path:
    return MODELS / dataset / recipe / seed_folder(seed)


def train_log_dir(dataset: str, recipe: str, seed: int) -> Path:
    return TRAIN_LOGS / dataset / recipe / seed_folder(seed)


def eval_dir(dataset: str, recipe: str, seed: int) -> Path:
    return EVAL / dataset / recipe / seed_folder(seed)


@dataclass(frozen=True)
class RunPaths:
    """Where one run writes: results (DVC outputs) and its resume state."""

    model_dir: Path
    log_dir: Path
    resume_dir: Path


def run_paths(dataset: str, recipe: str, seed: int) -> RunPaths:
    return RunPaths(model_dir(dataset, recipe, seed), train_log_dir(dataset, recipe, seed),
                    RESUME / dataset / recipe / seed_folder(seed))


# Self-supervised pretraining. A hyphen keeps SSL folders apart from recipe folders beside
# them (names may hold only letters, digits and '_').
PRETRAINED = Path("data/pretrained")
PRETRAIN_LOGS = Path("reports/pretrain")
SSL_EVAL_RUNS = Path("data/ssl_eval")


def pretrained_dir(dataset: str, ssl_recipe: str, seed: int) -> Path:
    return PRETRAINED / dataset / ssl_recipe / seed_folder(seed)


def pretrain_paths(dataset: str, ssl_recipe: str, seed: int) -> RunPaths:
    return RunPaths(pretrained_dir(dataset, ssl_recipe, seed), PRETRAIN_LOGS / dataset / ssl_recipe / seed_folder(seed),
                    RESUME / dataset / f"pretrain-{ssl_recipe}" / seed_folder(seed))


def ssl_eval_dir(dataset: str, ssl_recipe: str, seed: int) -> Path:
    """Beside the recipes' evaluations: the report depends on reports/eval."""
    return EVAL / dataset / f"ssl-{ssl_recipe}" / seed_folder(seed)


def ssl_evaluation_paths(dataset: str, ssl_recipe: str, seed: int, evaluation: str) -> RunPaths:
    """The linear probe's or the fine-tune's run on a pretrained backbone."""
    folder = SSL_EVAL_RUNS / dataset / ssl_recipe / seed_folder(seed)
    return RunPaths(folder / evaluation, folder / f"{evaluation}_log",
                    RESUME / dataset / f"ssl-{ssl_recipe}-{evaluation}" / seed_folder(seed))
