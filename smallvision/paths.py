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


PRETRAINED = Path("data/pretrained")
PRETRAIN_LOGS = Path("reports/pretrain")
SSL_EVAL_RUNS = Path("data/ssl_eval")


def pretrained_dir(dataset: str, ssl_recipe: str) -> Path:
    return PRETRAINED / dataset / ssl_recipe


def pretrain_log_dir(dataset: str, ssl_recipe: str) -> Path:
    return PRETRAIN_LOGS / dataset / ssl_recipe


def ssl_eval_dir(dataset: str, ssl_recipe: str) -> Path:
    """Beside the recipes' evaluations (the report depends on reports/eval); the hyphen keeps
    it apart from any recipe name, which may hold only letters, digits and '_'."""
    return EVAL / dataset / f"ssl-{ssl_recipe}"


def ssl_eval_runs_dir(dataset: str, ssl_recipe: str) -> Path:
    """The probe's and the fine-tune's checkpoints (kept for resuming)."""
    return SSL_EVAL_RUNS / dataset / ssl_recipe
