"""A track's page from a finished run: each arm's figures seed by seed from the run's evaluation
files, the splits from its prepared data, the provenance from its report, what the seed report
published from catalogue.yaml, and the arms' roles and questions from the track. A page is made
only when the run is complete and its command (profile TRACK --seeds ... [--arms ...], at the run's commit)
rebuilds the run's params.yaml."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import yaml

from smallvision.core.errors import UserError
from smallvision.core.io import read_json
from smallvision.core.paths import (
    PREPARED,
    eval_dir,
    run_complete,
    run_name,
    ssl_eval_dir,
    train_log_dir,
)
from smallvision.options.params import Params, load_params
from smallvision.profile import track_arms
from smallvision.publish.model import Arm, Page, Reference, Split

TRACKS = Path("tracks")
# What a page keeps of each supervised run: test figures, the validation figures that choose, the
# test-time settings' shares, retrieval and cost. Metrics a run lacks are left out.
KEPT = ("accuracy", "macro_f1", "balanced_accuracy", "binary_accuracy", "micro_recall", "val_accuracy", "val_macro_f1",
        "accuracy_without_tta", "macro_f1_without_tta", "accuracy_at_train_size", "macro_f1_at_train_size",
        "train_seconds", "k2_accuracy", "k3_accuracy", "k4_accuracy")
SSL_KEPT = ("knn20_accuracy", "knn3_accuracy", "probe_accuracy", "finetune_accuracy", "finetune_macro_f1",
            "knn20_val_accuracy", "knn3_val_accuracy", "probe_val_accuracy", "finetune_val_accuracy",
            "pretrain_seconds", "finetune_seconds", "embedding_rank_start", "embedding_rank")


def page_from_run(track: str, workspace: Path) -> Page:
    """docs/results/TRACK's page from the run in `workspace` (a checkout where `profile TRACK` and
    `dvc repro` ran)."""
    workspace = Path(workspace)
    for name in ("metrics.json", "results.json"):
        if not (workspace / "reports" / name).exists():
            raise UserError(f"{workspace / 'reports' / name} not found: run `dvc repro` there first")
    params_file = workspace / "params.yaml"
    params = load_params(params_file)
    meta = read_json(workspace / "reports" / "results.json")["metadata"]
    if meta.get("params_md5") != hashlib.md5(params_file.read_bytes()).hexdigest():
        raise UserError(f"{workspace / 'reports'} was made from another params.yaml (params_md5 differs): run `dvc "
                        "repro` there first")
    # What the track says of its arms (roles, questions, its data) is today's track file's; what ran is the run's.
    spec = read_track(TRACKS / f"{track}.yaml")
    seeds = sorted({run.seed for run in params.runs.values()} | {run.seed for run in params.ssl.runs.values()})
    # What the reports published is today's catalogue's (a figure corrected since the run is corrected on the page).
    params.catalogue = load_params().catalogue
    arms = supervised_arms(params, spec, workspace) + ssl_arms(params, spec, workspace)
    declared = list(track_arms(read_track(workspace / TRACKS / f"{track}.yaml")))
    ran = {arm.curve or arm.name for arm in arms}
    only = [name for name in declared if name in ran] if set(declared) - ran else None
    command = reproduce_command(track, seeds, spec, workspace, only)
    check_params_reproduce(track, seeds, workspace, only)
    notes = [f"Not on this page: the track's arms {', '.join(f'`{name}`' for name in declared if name not in ran)}, "
             "which this run left out (`--arms` in the command above).", ""] if only else []
    datasets = {arm.dataset for arm in arms}
    return Page(track=track, about=spec.get("about", ""), status="current", command=command, metadata=meta,
                confidence=params.report.confidence, splits={name: split_of(params, name, workspace) for name in datasets},
                arms=arms, report=spec.get("report"), data=spec.get("data") or {}, headline=headline_rows(spec),
                notes=notes)


def profile_arguments(seeds: list[int], only: list[str] | None) -> list[str]:
    """The profile command's options that rebuild a run: its seeds, and its arms when it ran only some."""
    return ["--seeds", *map(str, seeds), *(["--arms", *only] if only else [])]


def read_track(path: Path) -> dict:
    if not path.exists():
        raise UserError(f"{path} not found: publish the track the run applied (python -m smallvision.profile --list)")
    return yaml.safe_load(path.read_text()) or {}


def headline_rows(spec: dict) -> list[dict]:
    """The track's README rows: its `headline` dataset (or list of {dataset, metric})."""
    headline = spec.get("headline")
    if headline is None:
        return []
    rows = headline if isinstance(headline, list) else [headline]
    return [row if isinstance(row, dict) else {"dataset": row} for row in rows]


def supervised_arms(params: Params, spec: dict, workspace: Path) -> list[Arm]:
    arms = []
    for dataset in params.run_datasets:
        for name in params.arms_on(dataset):
            about = (spec.get("arms") or {}).get(name, {})
            recipe = params.recipe_of(dataset, name)
            run = params.run(run_name(dataset, name, params.seeds_of(dataset, name)[0]))
            per_seed: dict[str, dict[str, float]] = {}
            for seed in params.seeds_of(dataset, name):
                figures = evaluation(workspace / eval_dir(dataset, name, seed) / "metrics.json")
                complete_run(workspace / train_log_dir(dataset, name, seed))
                for metric, value in figures.items():
                    if metric in KEPT or metric.startswith("retrieval_"):
                        per_seed.setdefault(metric, {})[str(seed)] = value
            curve = name.rsplit("_k", 1)[0] if run.train_per_class else None
            about = about or (spec.get("arms") or {}).get(curve, {})
            arms.append(Arm(name, dataset, recipe, "supervised", about.get("role", "ours"), about.get("question", ""),
                            about.get("parent") if not curve else None, about.get("differs", ""), run.set, per_seed,
                            references(params, recipe, dataset), train_per_class=run.train_per_class,
                            curve=curve or (name if about.get("per_class") else None)))
    return arms


def ssl_arms(params: Params, spec: dict, workspace: Path) -> list[Arm]:
    arms: dict[tuple[str, str], Arm] = {}
    for key, run in params.ssl.runs.items():
        figures = evaluation(workspace / ssl_eval_dir(run.dataset, run.arm, run.seed) / "metrics.json")
        if (run.dataset, run.arm) not in arms:
            about = (spec.get("ssl_arms") or {}).get(run.arm, {})
            arms[(run.dataset, run.arm)] = Arm(
                run.arm, run.dataset, run.recipe, "ssl", about.get("role", "ours"), about.get("question", ""),
                about.get("parent"), about.get("differs", ""), run.set, {}, references(params, run.recipe, run.dataset),
                {key: figures[key] for key in ("method", "backbone", "weights") if key in figures})
        for metric in SSL_KEPT:
            if metric in figures:
                arms[(run.dataset, run.arm)].per_seed.setdefault(metric, {})[str(run.seed)] = figures[metric]
    return list(arms.values())


def evaluation(path: Path) -> dict:
    if not path.exists():
        raise UserError(f"{path} not found: the run is not finished; run `dvc repro` to evaluate every run")
    return read_json(path)


def complete_run(log_dir: Path) -> None:
    if not run_complete(log_dir):
        raise UserError(f"{log_dir}: its training did not finish (complete: false); run `dvc repro` first")


def references(params: Params, recipe: str, dataset: str) -> list[Reference]:
    """What the report published for this recipe on this dataset (or the seed dataset it stands in for)."""
    found = []
    for ref in params.about(recipe).references:
        published = ref.results.get(dataset) or ref.results.get(params.dataset(dataset).seed_dataset or "") or {}
        found += [Reference(ref.report, ref.section, ref.experiment, metric, value, ref.measured_on, ref.printed)
                  for metric, value in published.items()]
    return found


def split_of(params: Params, dataset: str, workspace: Path) -> Split:
    folder = workspace / PREPARED / dataset
    files = json.loads((folder / "files.json").read_text())
    labels = np.load(folder / "test_labels.npy")
    fingerprint = hashlib.md5(json.dumps(files["test"]).encode() + labels.tobytes()).hexdigest()[:12]
    classes = json.loads((folder / "classes.json").read_text())
    return Split(dataset, params.dataset(dataset).seed_dataset, len(classes), len(files["train"]), len(files["val"]),
                 len(files["test"]), fingerprint, labels.ndim == 2)


def reproduce_command(track: str, seeds: list[int], spec: dict, workspace: Path, only: list[str] | None = None) -> str:
    """The commands that rerun the track with these seeds; its folders named by environment
    variables ($VAR|fallback in the track) left as placeholders."""
    text = (workspace / TRACKS / f"{track}.yaml").read_text()
    names = dict.fromkeys(re.findall(r"\$(\w+)\|", "\n".join(line.split("#")[0] for line in text.splitlines())))
    folders = "".join(f"{name}=/path/to/{name} " for name in names)
    return (f"{folders}python -m smallvision.profile {track} {' '.join(profile_arguments(seeds, only))} && dvc repro && "
            f"python -m smallvision.publish results {track}")


def check_params_reproduce(track: str, seeds: list[int], workspace: Path, only: list[str] | None = None) -> None:
    """The page's command must rebuild the run's params.yaml: `profile TRACK --seeds ... [--arms ...]` at the
    run's commit, from its committed params.yaml, with this shell's folder variables, writes it
    byte for byte. Else the page would claim a command that does not reproduce the run."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            archive = subprocess.run(["git", "-C", str(workspace), "archive", "HEAD"], capture_output=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            raise UserError(f"{workspace} is not a git checkout of smallvision: a page's run must be one") from None
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        command = [shutil.which("python") or "python", "-m", "smallvision.profile", track, *profile_arguments(seeds, only)]
        result = subprocess.run(command, cwd=tmp, capture_output=True, text=True,
                                env={**os.environ, "PYTHONPATH": tmp, "PYTHONDONTWRITEBYTECODE": "1"})
        if result.returncode:
            raise UserError(f"`{' '.join(command[1:])}` failed at the run's commit: {result.stderr.strip()}")
        expected = (Path(tmp) / "params.yaml").read_text()
    if expected != (workspace / "params.yaml").read_text():
        raise UserError(f"{workspace / 'params.yaml'} is not what `python -m smallvision.profile {track} "
                        f"{' '.join(profile_arguments(seeds, only))}` writes at the run's commit, so the page's command would not "
                        "reproduce the run: set the track's folder variables as for the run, or apply the track "
                        "again and rerun `dvc repro`")
