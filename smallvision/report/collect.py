"""Gather every run the pipeline evaluated into tables, and summarise them over seeds."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from smallvision.core.errors import UserError
from smallvision.core.io import read_json
from smallvision.core.paths import eval_dir, train_log_dir
from smallvision.options.params import Params
from smallvision.report import stats

# The metrics a seed's published figure may be set against (the first its report gives is used).
COMPARABLE = ("accuracy", "binary_accuracy", "macro_f1", "macro_recall", "k3_accuracy")
# Metrics reported with their spread over seeds: those, balanced accuracy, and a kNN recipe's
# accuracy at each of its k (k2_accuracy, ...).
SPREAD = (*COMPARABLE, "balanced_accuracy")
KNN_ACCURACY = re.compile(r"k\d+_accuracy")
NOT_METRICS = {"dataset", "recipe", "seed", "reference", "reference_metric", "reference_value"}


@dataclass
class Results:
    runs: pd.DataFrame  # one row per run (dataset, recipe, seed): every scalar metric
    leaderboard: pd.DataFrame  # one row per dataset x recipe: means, intervals, paired test vs the best
    history: pd.DataFrame  # one row per run x epoch x metric
    confidence: float = 0.95
    best_seed: dict = field(default_factory=dict)  # (dataset, recipe) -> the seed with the best accuracy
    # Of each recipe's best seed, keyed (dataset, recipe):
    confusion: dict = field(default_factory=dict)  # {"classes", "matrix"}
    per_class: dict = field(default_factory=dict)  # DataFrame
    predictions: dict = field(default_factory=dict)  # DataFrame

    def chosen(self, dataset: str) -> str | None:
        """The arm chosen on validation (highest mean validation accuracy), None without one."""
        rows = self.leaderboard[self.leaderboard.dataset == dataset]
        chosen = rows.chosen_recipe.iloc[0] if len(rows) else None
        return None if chosen is None or pd.isna(chosen) else chosen

    def shown(self, dataset: str) -> str:
        """The arm whose confusion, mistakes and classes the report shows: the one chosen on
        validation, or, with none, the first by name."""
        return self.chosen(dataset) or self.by_validation(dataset)[0]

    def by_validation(self, dataset: str) -> list[str]:
        """The dataset's arms, best mean validation accuracy first (then by name; those without one last)."""
        rows = self.leaderboard[self.leaderboard.dataset == dataset]
        key = rows.val_accuracy.fillna(-1) if "val_accuracy" in rows else pd.Series(0.0, index=rows.index)
        return list(rows.assign(key=key).sort_values(["key", "recipe"], ascending=[False, True]).recipe)

    @property
    def datasets(self) -> list[str]:
        return list(dict.fromkeys(self.leaderboard.dataset))


def collect(params: Params) -> Results:
    """Every run's evaluation, then per dataset x recipe the mean over seeds with its interval,
    the paired difference to the arm chosen on validation and to the seed's published figure."""
    rows, histories = [], []
    for run in params.runs.values():
        folder = eval_dir(run.dataset, run.arm, run.seed)
        if not (folder / "metrics.json").exists():
            raise UserError(f"no evaluation of run {run.name} ({folder}): run `dvc repro`")
        rows.append({"dataset": run.dataset, "recipe": run.arm, "seed": run.seed, **read_json(folder / "metrics.json")})
        histories.append(read_history(run.dataset, run.arm, run.seed))
    runs, history = pd.DataFrame(rows), pd.concat(histories, ignore_index=True)
    results = Results(runs, leaderboard(runs, history, params), history, params.report.confidence)
    for (dataset, recipe), group in runs.groupby(["dataset", "recipe"], sort=False):
        seed = int(group.sort_values(["accuracy", "seed"], ascending=[False, True]).iloc[0].seed)
        key, folder = (dataset, recipe), eval_dir(dataset, recipe, seed)
        results.best_seed[key] = seed
        results.confusion[key] = read_json(folder / "confusion.json")
        results.per_class[key] = pd.read_csv(folder / "per_class.csv")
        results.predictions[key] = pd.read_csv(folder / "predictions.csv")
    return results


def has_spread(metric: str) -> bool:
    """Whether the report gives this metric its interval over seeds."""
    return metric in SPREAD or KNN_ACCURACY.fullmatch(metric) is not None


def summary_table(runs: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """One row per dataset x recipe: every metric's mean over seeds, and the spread (std, interval,
    n) of those that has_spread names. A metric a recipe does not produce has n = 0 there."""
    metrics = [c for c in runs.columns if c not in NOT_METRICS and pd.api.types.is_numeric_dtype(runs[c])]
    means = runs.groupby(["dataset", "recipe"], sort=False)[metrics].mean().reset_index()
    with_spread = [m for m in metrics if has_spread(m)]
    spread = stats.summarise(runs, with_spread, confidence).drop(columns=with_spread)
    return means.merge(spread, on=["dataset", "recipe"])


def leaderboard(runs: pd.DataFrame, histories: pd.DataFrame, params: Params) -> pd.DataFrame:
    confidence = params.report.confidence
    paired = stats.paired_vs_chosen(runs, "accuracy", confidence).drop(columns=["mean"])
    table = summary_table(runs, confidence).merge(paired, on=["dataset", "recipe"])
    references = pd.DataFrame([{"dataset": d, "recipe": r, **reference_columns(params.about(params.recipe_of(d, r)), d, params.dataset(d).seed_dataset)}
                               for d, r in zip(table.dataset, table.recipe)])
    table = table.merge(references, on=["dataset", "recipe"])
    published = {(row.dataset, row.recipe): (row.reference_metric, row.reference_value)
                 for row in table.itertuples() if row.reference_metric}
    figures = {dataset: figure for dataset in table.dataset.unique()
               if (figure := seed_figure(params, dataset)) is not None}
    table = table.merge(reach_published(runs, histories, {d: f.accuracy for d, f in figures.items()}),
                        on=["dataset", "recipe"], how="left")
    table["reach_seed_minutes"] = table.dataset.map(lambda d: figures[d].minutes if d in figures else None).astype(float)
    if published:
        versus = stats.against_published(runs, published, confidence)[
            ["dataset", "recipe", "diff_mean", "diff_ci_low", "diff_ci_high", "n", "verdict"]]
        versus.columns = ["dataset", "recipe", "published_diff", "published_diff_low", "published_diff_high",
                          "published_n", "published_verdict"]
        table = table.merge(versus, on=["dataset", "recipe"], how="left")
    return table


class SeedFigure(NamedTuple):
    accuracy: float
    source: str  # the report it comes from
    minutes: float | None  # how long the seed trained to get it, where it said


def seed_figure(params: Params, dataset: str, ssl: bool = False) -> SeedFigure | None:
    """The best accuracy any seed experiment published on this dataset (or the one it stands in
    for), whichever recipes run here: the figure to beat. `ssl`: among the SSL recipes' entries
    (their `finetune_accuracy`, a fine-tune after pretraining without labels), else among the
    supervised recipes' (`accuracy`)."""
    names = {dataset, params.dataset(dataset).seed_dataset}
    metric = "finetune_accuracy" if ssl else "accuracy"
    figures = []
    for recipe, about in params.catalogue.items():
        if (recipe in params.recipes) == ssl:
            continue
        figures += [SeedFigure(reference.results[name][metric], reference.source, reference.train_minutes)
                    for reference in about.references for name in names if metric in reference.results.get(name, {})]
    return max(figures, key=lambda figure: figure.accuracy, default=None)


def reach_published(runs: pd.DataFrame, history: pd.DataFrame, published: dict[str, float]) -> pd.DataFrame:
    """Per dataset x recipe, how long training took to first reach the seed's published accuracy
    (`published`, by dataset) on the validation split: `reach_target`, `reach_seconds` (the mean
    over the seeds that reached it; setup such as embedding counts before the first epoch) and
    `reach_n`."""
    columns = ["dataset", "recipe", "reach_target", "reach_seconds", "reach_n"]
    curves = []
    for (dataset, recipe, seed), run in history[history.dataset.isin(list(published))].groupby(
            ["dataset", "recipe", "seed"]):
        by_step = run.pivot_table(index="step", columns="metric", values="value").sort_index()
        if "val_accuracy" not in by_step:
            continue
        epochs = by_step["seconds"] if "seconds" in by_step else pd.Series(0.0, index=by_step.index)
        total = runs.query("dataset == @dataset and recipe == @recipe and seed == @seed").train_seconds.iloc[0]
        elapsed = epochs.cumsum() + max(0.0, total - epochs.sum())
        curves.append(pd.DataFrame({"dataset": dataset, "recipe": recipe, "seed": seed, "step": by_step.index,
                                    "metric": "val_accuracy", "value": by_step["val_accuracy"].values,
                                    "elapsed_seconds": elapsed.values}))
    if not curves:
        return pd.DataFrame(columns=columns)
    curves = pd.concat(curves, ignore_index=True)
    targets = {(d, r): published[d] for d, r in zip(curves.dataset, curves.recipe)}
    reached = stats.time_to_reach(curves, targets)
    return reached.rename(columns={"target": "reach_target", "seconds_mean": "reach_seconds",
                                   "n_reached": "reach_n"})[columns]


def reference_columns(about, dataset: str, seed_dataset: str | None) -> dict:
    """The seed's published figure for this recipe on this dataset (or on the seed dataset it
    stands in for): the first of COMPARABLE it reports, to set beside ours for the same metric."""
    for ref in about.references:
        published = ref.results.get(dataset, ref.results.get(seed_dataset or "")) or {}
        metric = next((m for m in COMPARABLE if m in published), None)
        if metric is not None:
            figures = ", ".join(f"{k} {v:g}" for k, v in published.items())
            return {"reference_metric": metric, "reference_value": published[metric],
                    "reference": f"{ref.source}: {figures}"}
    return {"reference_metric": "", "reference_value": np.nan, "reference": ""}


def read_history(dataset: str, recipe: str, seed: int) -> pd.DataFrame:
    """The per-epoch metrics dvclive logged (plots/metrics/<metric>.tsv) for one run."""
    folder = train_log_dir(dataset, recipe, seed) / "plots" / "metrics"
    frames = [
        pd.read_csv(path, sep="\t").rename(columns={path.stem: "value"}).assign(metric=path.stem)
        for path in sorted(Path(folder).glob("*.tsv"))
    ]
    columns = ["dataset", "recipe", "seed", "step", "metric", "value"]
    if not frames:
        return pd.DataFrame(columns=columns)
    history = pd.concat(frames, ignore_index=True)[["step", "metric", "value"]]
    return history.assign(dataset=dataset, recipe=recipe, seed=seed)[columns]


def metrics_tree(results: Results) -> dict:
    """dataset -> recipe -> metric: the means over seeds, the spread of the metrics that have one
    (std, interval, n) and the seeds: reports/metrics.json. A recipe lists only the metrics it
    produced: no `k3_accuracy_n: 0` for a recipe without kNN."""
    tree: dict = {}
    for row in results.leaderboard.to_dict("records"):
        scalars = {k: v for k, v in row.items()
                   if k not in NOT_METRICS and not k.startswith(("diff_", "published_")) and k not in ("chosen_recipe",)
                   and isinstance(v, (int, float)) and not isinstance(v, bool)
                   and not (isinstance(v, float) and np.isnan(v))
                   and not (k.endswith("_n") and has_spread(k[:-2]) and v == 0)}
        tree.setdefault(row["dataset"], {})[row["recipe"]] = scalars
    return tree


def headline_tree(results: Results) -> dict:
    """headline -> dataset -> recipe -> mean test accuracy: reports/headline.json, one column
    `headline.<dataset>.<recipe>` per run in `dvc exp show` (the full metrics: metrics.json)."""
    tree: dict = {}
    for row in results.leaderboard.itertuples():
        tree.setdefault(row.dataset, {})[row.recipe] = round(float(row.accuracy), 4)
    return {"headline": tree}


def most_confused_pairs(confusion: dict, top: int) -> pd.DataFrame:
    """Off-diagonal cells with the most test images, both directions of a pair summed."""
    matrix = np.asarray(confusion["matrix"])
    names = confusion["classes"]
    symmetric = np.triu(matrix + matrix.T, k=1)
    flat = np.argsort(-symmetric, axis=None)[:top]
    rows = []
    for index in flat:
        i, j = np.unravel_index(index, symmetric.shape)
        if symmetric[i, j] == 0:
            break
        rows.append({"class_a": names[i], "class_b": names[j], "a_as_b": int(matrix[i, j]),
                     "b_as_a": int(matrix[j, i]), "total": int(symmetric[i, j])})
    return pd.DataFrame(rows, columns=["class_a", "class_b", "a_as_b", "b_as_a", "total"])


def pareto_front(frame: pd.DataFrame, cost: str = "train_seconds", gain: str = "accuracy") -> pd.Series:
    """True for rows that no other row beats on both cost (lower) and gain (higher)."""
    flags = []
    for _, row in frame.iterrows():
        dominated = ((frame[cost] <= row[cost]) & (frame[gain] >= row[gain])
                     & ((frame[cost] < row[cost]) | (frame[gain] > row[gain]))).any()
        flags.append(not dominated)
    return pd.Series(flags, index=frame.index)
