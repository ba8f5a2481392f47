"""Where each stage writes, per dataset, recipe and seed (all DVC outputs), and whether a run
there has ended."""

from __future__ import annotations

import json
import shlex
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

BEST = "best.pt"  # in a trained recipe's model folder: the best epoch's weights (what evaluation uses)
METRICS = "metrics.json"  # a run's per-epoch log (smallvision.fit.log), beside its train.json
COMPLETE = "complete"  # the key in that metrics.json: true once the run has ended and its results are written


def run_name(dataset: str, arm: str, seed: int) -> str:
    """A run's key: the name of its DVC stages and of its folders."""
    return f"{dataset}-{arm}-s{seed}"


def model_dir(dataset: str, arm: str, seed: int) -> Path:
    return MODELS / run_name(dataset, arm, seed)


def train_log_dir(dataset: str, arm: str, seed: int) -> Path:
    return TRAIN_LOGS / run_name(dataset, arm, seed)


def eval_dir(dataset: str, arm: str, seed: int) -> Path:
    return EVAL / run_name(dataset, arm, seed)


@dataclass(frozen=True)
class RunPaths:
    """Where one run writes: results (DVC outputs) and its resume state."""

    model_dir: Path
    log_dir: Path
    resume_dir: Path


def run_paths(dataset: str, arm: str, seed: int) -> RunPaths:
    return RunPaths(model_dir(dataset, arm, seed), train_log_dir(dataset, arm, seed),
                    RESUME / run_name(dataset, arm, seed))


# Self-supervised pretraining, keyed as the runs of `ssl.runs`. The prefix keeps an SSL run's
# folders apart from a supervised run's of the same key.
PRETRAINED = Path("data/pretrained")
PRETRAIN_LOGS = Path("reports/pretrain")
SSL_EVAL_RUNS = Path("data/ssl_eval")


def pretrained_dir(dataset: str, arm: str, seed: int) -> Path:
    return PRETRAINED / run_name(dataset, arm, seed)


def pretrain_paths(dataset: str, arm: str, seed: int) -> RunPaths:
    key = run_name(dataset, arm, seed)
    return RunPaths(pretrained_dir(dataset, arm, seed), PRETRAIN_LOGS / key, RESUME / f"pretrain-{key}")


def ssl_eval_dir(dataset: str, arm: str, seed: int) -> Path:
    """Beside the supervised runs' evaluations: the report depends on reports/eval."""
    return EVAL / f"ssl-{run_name(dataset, arm, seed)}"


def ssl_evaluation_paths(dataset: str, arm: str, seed: int, evaluation: str) -> RunPaths:
    """The linear probe's or the fine-tune's run on a pretrained backbone."""
    key = run_name(dataset, arm, seed)
    folder = SSL_EVAL_RUNS / key
    return RunPaths(folder / evaluation, folder / f"{evaluation}_log", RESUME / f"ssl-{key}-{evaluation}")


# The stage that writes each run folder (data/models/<key>, ...): what rebuilds a damaged file in it.
WRITERS = ((MODELS, "train"), (PRETRAINED, "pretrain"), (SSL_EVAL_RUNS, "ssl_evaluate"))


def rebuild_advice(path: str | Path) -> str:
    """What to do about a damaged file: rerun the stage that wrote it (a file in a run's folder,
    wherever the project is), or else replace it and record its checksum."""
    parts = Path(path).parts
    for folder, stage in WRITERS:
        size = len(folder.parts)
        for start in range(len(parts) - size - 1):  # the run's key, then at least a file name
            if parts[start:start + size] == folder.parts:
                return shared_cache_advice(path) + f"rebuild it with `dvc repro -f {stage}@{parts[start + size]}`"
    name = Path(path).name
    return (f"replace it with an intact copy; for a file of your own, record its checksum beside it "
            f"(`sha256sum {name} > {name}.sha256` in its folder)")


def shared_cache_advice(path: str | Path) -> str:
    """A file with more than one link shares its bytes with DVC's cache (cache.type hardlink): the
    cache's copy is damaged with it, and a rerun that writes the same bytes would link it back."""
    if not Path(path).exists() or Path(path).stat().st_nlink < 2:
        return ""
    quoted = shlex.quote(str(path))
    return (f"it is a hard link into DVC's cache, whose copy is damaged with it, so first delete both "
            f"(`find .dvc/cache -samefile {quoted} -delete && rm -f {quoted}`), then ")


def run_complete(log_dir: Path) -> bool:
    """Whether the run logging to `log_dir` has ended (metrics.json says `complete: true`); not
    for a run that is still going, was killed, or never logged."""
    path = Path(log_dir) / METRICS
    return path.exists() and json.loads(path.read_text()).get(COMPLETE) is True
