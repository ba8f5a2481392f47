"""Gather every dataset x recipe result the pipeline produced into tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from smallvision.config import Params
from smallvision.errors import UserError
from smallvision.io import read_json
from smallvision.paths import eval_dir, train_log_dir

HEADLINE = ["accuracy", "macro_f1", "balanced_accuracy", "train_seconds", "parameters", "inference_images_per_second"]


@dataclass
class Results:
    leaderboard: pd.DataFrame  # one row per dataset x recipe: every scalar metric
    history: pd.DataFrame  # one row per dataset x recipe x epoch
    confusion: dict = field(default_factory=dict)  # (dataset, recipe) -> {"classes", "matrix"}
    per_class: dict = field(default_factory=dict)  # (dataset, recipe) -> DataFrame
    predictions: dict = field(default_factory=dict)  # (dataset, recipe) -> DataFrame

    def best(self, dataset: str) -> str:
        rows = self.leaderboard[self.leaderboard.dataset == dataset]
        return rows.sort_values("accuracy", ascending=False).iloc[0].recipe

    @property
    def datasets(self) -> list[str]:
        return list(dict.fromkeys(self.leaderboard.dataset))


def collect(params: Params) -> Results:
    rows, histories = [], []
    results = Results(pd.DataFrame(), pd.DataFrame())
    for dataset in params.datasets:
        for recipe_name in params.benchmark.recipes:
            folder = eval_dir(dataset, recipe_name)
            if not (folder / "metrics.json").exists():
                raise UserError(f"no evaluation of {recipe_name} on {dataset} ({folder}): run `dvc repro`")
            recipe = params.recipe(recipe_name)
            rows.append({"dataset": dataset, "recipe": recipe_name, **read_json(folder / "metrics.json"),
                         **reference_columns(recipe, dataset, params.dataset(dataset).seed_dataset)})
            histories.append(read_history(dataset, recipe_name))
            key = (dataset, recipe_name)
            results.confusion[key] = read_json(folder / "confusion.json")
            results.per_class[key] = pd.read_csv(folder / "per_class.csv")
            results.predictions[key] = pd.read_csv(folder / "predictions.csv")
    results.leaderboard = pd.DataFrame(rows)
    results.history = pd.concat(histories, ignore_index=True) if histories else pd.DataFrame()
    return results


COMPARABLE = ("accuracy", "binary_accuracy", "macro_f1", "macro_recall", "k3_accuracy")


def reference_columns(recipe, dataset: str, seed_dataset: str | None) -> dict:
    """The seed's published figure for this recipe on this dataset (or on the seed dataset it
    stands in for): the first of COMPARABLE it reports, to set beside ours for the same metric."""
    ref = recipe.reference
    published = None if ref is None else ref.results.get(dataset, ref.results.get(seed_dataset or ""))
    metric = next((m for m in COMPARABLE if published and m in published), None)
    if metric is None:
        return {"reference_metric": "", "reference_value": np.nan, "reference": ""}
    figures = ", ".join(f"{k} {v:g}" for k, v in published.items())
    return {"reference_metric": metric, "reference_value": published[metric], "reference": f"{ref.source}: {figures}"}


def read_history(dataset: str, recipe: str) -> pd.DataFrame:
    """The per-epoch metrics dvclive logged (plots/metrics/<metric>.tsv)."""
    folder = train_log_dir(dataset, recipe) / "plots" / "metrics"
    frames = [
        pd.read_csv(path, sep="\t").rename(columns={path.stem: "value"}).assign(metric=path.stem)
        for path in sorted(Path(folder).glob("*.tsv"))
    ]
    if not frames:
        return pd.DataFrame(columns=["dataset", "recipe", "step", "metric", "value"])
    history = pd.concat(frames, ignore_index=True)[["step", "metric", "value"]]
    return history.assign(dataset=dataset, recipe=recipe)


def metrics_tree(results: Results) -> dict:
    """dataset -> recipe -> scalar metric: the aggregated reports/metrics.json."""
    tree: dict = {}
    for row in results.leaderboard.to_dict("records"):
        scalars = {k: v for k, v in row.items()
                   if k not in ("dataset", "recipe", "reference", "reference_metric", "reference_value")
                   and isinstance(v, (int, float))
                   and not (isinstance(v, float) and np.isnan(v))}
        tree.setdefault(row["dataset"], {})[row["recipe"]] = scalars
    return tree


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
