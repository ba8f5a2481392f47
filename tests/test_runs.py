"""Runs as DVC sees them: only the listed (dataset, recipe, seed) runs become stages, seeds are
summarised with scipy's intervals, a new seed reruns only itself, a catalogue edit reruns only
the report, a typo leaves nothing behind, and results travel through a DVC remote."""

from __future__ import annotations

import json
import re
import subprocess

import numpy as np
import pytest
from scipy import stats

from tests.conftest import (
    REPO,
    commit,
    copy_repo,
    edit_params,
    make_image_folder,
    python_env,
    read_yaml,
    run,
    runs_for,
    stages_run,
    tiny,
)

SEEDED = pytest.mark.xdist_group("seeded")


def stage_names(repo) -> set[str]:
    listing = run(["dvc", "stage", "list", "--names-only"], cwd=repo).stdout.split()
    return set(listing)


def test_each_dataset_runs_only_its_own_recipes(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    images = make_image_folder(tmp_path / "images", {"a": 4, "b": 4})

    def two_datasets(params, recipes):
        params["datasets"]["folder"] = {"root": str(images)}
        params["runs"] = {**runs_for("digits", ["logreg", "cnn"], seeds=[0, 1], definitions=recipes),
                          **runs_for("folder", ["mlp"], definitions=recipes)}

    edit_params(repo, two_datasets)
    runs = {"digits-logreg-s0", "digits-logreg-s1", "digits-cnn-s0", "digits-cnn-s1", "folder-mlp-s0"}
    trained = {name.split("@", 1)[1] for name in stage_names(repo) if name.startswith(("train@", "evaluate@"))}
    assert trained == runs
    assert {f"train@{name}" for name in runs} | {f"evaluate@{name}" for name in runs} <= stage_names(repo)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """mlp over two seeds and logreg over one (its fit draws nothing at random, and the
    experiments below rerun it) on a tiny dataset through `dvc repro`, committed."""
    images = make_image_folder(tmp_path_factory.mktemp("images") / "tiny", {c: 10 for c in "abcd"}, size=40)
    repo = copy_repo(tmp_path_factory.mktemp("repo"))

    def two_seeds(params, recipes):
        tiny(params, recipes, epochs=2)
        params["datasets"] = {"tiny": {"root": str(images)}}
        params["runs"] = {**runs_for("tiny", ["logreg"], definitions=recipes),
                          **runs_for("tiny", ["mlp"], seeds=[0, 1], definitions=recipes)}

    edit_params(repo, two_seeds)
    run(["dvc", "repro"], cwd=repo)
    commit(repo, "two seeds")
    return repo


@SEEDED
def test_seeds_are_summarised_with_scipy_intervals(seeded):
    per_seed = [json.loads((seeded / f"reports/eval/tiny-mlp-s{seed}/metrics.json").read_text()) for seed in (0, 1)]
    assert per_seed[0]["log_loss"] != per_seed[1]["log_loss"]  # two seeds, two different runs
    summary = json.loads((seeded / "reports/metrics.json").read_text())["tiny"]["mlp"]
    for metric in ("accuracy", "macro_f1"):
        values = np.array([run[metric] for run in per_seed])
        assert summary[metric] == pytest.approx(values.mean())
        assert summary[f"{metric}_n"] == 2
        if np.ptp(values) == 0:  # seeds that agree exactly: no spread, the interval is the mean
            assert summary[f"{metric}_std"] == 0 and summary[f"{metric}_ci_low"] == pytest.approx(values.mean())
            continue
        low, high = stats.t.interval(0.95, 1, loc=values.mean(), scale=stats.sem(values))
        assert summary[f"{metric}_std"] == pytest.approx(values.std(ddof=1))
        assert (summary[f"{metric}_ci_low"], summary[f"{metric}_ci_high"]) == pytest.approx((low, high))
    headline = json.loads((seeded / "reports/headline.json").read_text())
    assert headline["headline"]["tiny"]["mlp"] == pytest.approx(summary["accuracy"], abs=5e-5)
    readme = (seeded / "reports/README.md").read_text()
    assert "(n=2)" in readme or "(n=2, identical over seeds)" in readme


@SEEDED
def test_adding_a_seed_reruns_only_that_seed(seeded):
    """The README's form: one `dvc exp run -S` adds a run."""
    result = run(["dvc", "exp", "run", "-S",
                  "+runs.tiny-mlp-s2={dataset: tiny, recipe: mlp, seed: 2, defaults: train}"], cwd=seeded)
    # validate re-checks params.yaml; its output does not change, so nothing else follows from it
    assert stages_run(result.stdout) == {"validate", "train@tiny-mlp-s2", "evaluate@tiny-mlp-s2", "report"}
    summary = json.loads((seeded / "reports/metrics.json").read_text())["tiny"]["mlp"]
    assert summary["n_seeds"] == 3
    run(["git", "checkout", "params.yaml", "dvc.lock"], cwd=seeded)
    run(["dvc", "checkout", "-q"], cwd=seeded, check=False)


@SEEDED
def test_notes_and_published_figures_rerun_only_the_report(seeded):
    catalogue = seeded / "catalogue.yaml"
    before = catalogue.read_text()
    text = before.replace("Two hidden layers on raw pixels.", "Two hidden layers on raw pixels, edited.")
    text = text.replace("accuracy: 0.3668", "accuracy: 0.37")
    assert text.count("edited") == 1 and "0.37\n" in text
    catalogue.write_text(text)
    try:
        assert stale(seeded) == {"report"}
    finally:
        catalogue.write_text(before)


@SEEDED
def test_a_report_code_edit_reruns_no_preparing_training_or_evaluation(seeded):
    """validate (seconds; its output does not change) and the report follow an edit to the report's
    code; prepare, which once depended on the whole library, does not."""
    module = seeded / "smallvision/report/text.py"
    before = module.read_text()
    module.write_text(before + "\n# an edit\n")
    try:
        assert stale(seeded) == {"validate", "report"}
    finally:
        module.write_text(before)


@SEEDED
def test_logreg_does_not_track_the_torch_defaults(seeded):
    params = seeded / "params.yaml"
    before = params.read_text()
    params.write_text(re.sub(r"(?m)^  epochs: \d+$", "  epochs: 3", before, count=1))
    try:
        changed = stale(seeded)
        assert {"train@tiny-mlp-s0", "train@tiny-mlp-s1"} <= changed
        assert not {"train@tiny-logreg-s0", "evaluate@tiny-logreg-s0"} & changed
    finally:
        params.write_text(before)


def stale(repo) -> set[str]:
    """The stages `dvc status` reports as changed."""
    status = json.loads(run(["dvc", "status", "--json"], cwd=repo).stdout)
    return {name.split(":")[-1] for name in status}


@SEEDED
def test_unknown_recipe_stops_before_anything_is_written(seeded):
    before = sorted(p for p in (seeded / "data").rglob("*")) + sorted(p for p in (seeded / "reports").rglob("*"))
    direct = run(["python", "-m", "stages.train", "tiny-mlpp-s0"], cwd=seeded, check=False)
    assert direct.returncode == 2 and "no run 'tiny-mlpp-s0'" in direct.stderr and "did you mean" in direct.stderr
    typo = run(["dvc", "exp", "run", "-S", "+runs.tiny-mlpp-s0={dataset: tiny, recipe: mlpp, seed: 0, defaults: train}"],
               cwd=seeded, check=False)
    assert typo.returncode != 0 and "no recipe 'mlpp'" in typo.stdout + typo.stderr
    run(["git", "checkout", "params.yaml"], cwd=seeded)  # the README's way back from a failed experiment
    after = sorted(p for p in (seeded / "data").rglob("*")) + sorted(p for p in (seeded / "reports").rglob("*"))
    assert [p for p in after if "mlpp" in str(p)] == [] and set(after) <= set(before)


@SEEDED
def test_results_travel_through_a_dvc_remote(seeded, tmp_path):
    """The README's three lines: push to a remote; a fresh clone pulls, and nothing is stale."""
    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "--local", "-d", "shared", str(remote)], cwd=seeded)
    run(["dvc", "push", "-q"], cwd=seeded)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(seeded), str(clone)], check=True)
    run(["dvc", "remote", "add", "--local", "-d", "shared", str(remote)], cwd=clone)
    run(["dvc", "pull", "-q"], cwd=clone)
    assert stale(clone) == set()
    assert stages_run(run(["dvc", "repro"], cwd=clone).stdout) == set()
    assert "Leaderboard" in (clone / "reports/index.html").read_text()
    assert read_yaml(clone / "params.yaml")["runs"] == read_yaml(seeded / "params.yaml")["runs"]


def documented_exp_show() -> str:
    """The README's `dvc exp show` line, as a user would copy it."""
    readme = (REPO / "README.md").read_text()
    return next(line for line in readme.splitlines() if line.startswith("dvc exp show"))


@SEEDED
def test_the_documented_exp_show_compares_two_experiments(seeded):
    """Runs after the remote test (it changes the workspace): two experiments, then the README's
    command prints their names, the param that differs and one headline figure per dataset.recipe."""
    for name, value in (("c-half", "0.5"), ("c-tenth", "0.1")):
        run(["dvc", "exp", "run", "-n", name, "-S", f"recipes.yaml:logreg.C={value}"], cwd=seeded)
    env = {**python_env(), "COLUMNS": "200"}  # a terminal's width; rich cuts columns to fit
    shown = subprocess.run(documented_exp_show() + " --no-pager", shell=True, cwd=seeded, env=env,
                           capture_output=True, text=True, check=True).stdout
    header = next(line for line in shown.splitlines() if "Experiment" in line).split()
    assert {"headline.tiny.logreg", "headline.tiny.mlp", "logreg.C"} <= set(header), header
    assert len(header) <= 8, header  # readable: no per-metric, per-run or dependency columns
    values = json.loads(run(["dvc", "exp", "show", "--json"], cwd=seeded).stdout)
    figures = {exp["name"]: exp["data"]["metrics"]["reports/headline.json"]["data"]["headline"]["tiny"]["logreg"]
               for commit in values for exp in [e for run_ in (commit.get("experiments") or []) for e in run_["revs"]]
               if exp.get("name") in ("c-half", "c-tenth")}
    assert set(figures) == {"c-half", "c-tenth"}
    for name, figure in figures.items():
        row = next(line for line in shown.splitlines() if name in line)
        assert f"{figure:g}" in row or f"{figure}" in row, (name, figure, row)
