"""Tables and Markdown text of the report."""

from __future__ import annotations

import numpy as np
import pandas as pd

from smallvision.config import Params
from smallvision.report.collect import Results

COLUMNS = {
    "recipe": "recipe",
    "accuracy": "accuracy",
    "macro_f1": "macro F1",
    "balanced_accuracy": "balanced acc.",
    "train_seconds": "train s",
    "parameters": "parameters",
    "inference_images_per_second": "inference img/s",
    "published": "published (seed)",
    "delta": "ours - published",
}


def leaderboard_table(results: Results, dataset: str) -> pd.DataFrame:
    """One row per recipe, best first; the seed's figure beside ours for the same metric."""
    rows = results.leaderboard[results.leaderboard.dataset == dataset].copy()
    ours = [row.get(row.reference_metric, np.nan) if row.reference_metric else np.nan for _, row in rows.iterrows()]
    rows["delta"] = np.asarray(ours, dtype=float) - rows.reference_value.astype(float)
    rows["published"] = [f"{m.replace('_', ' ')} {v:.4f}" if m else "" for m, v in
                         zip(rows.reference_metric, rows.reference_value)]
    rows = rows.sort_values("accuracy", ascending=False)[list(COLUMNS)]
    return rows.rename(columns=COLUMNS).reset_index(drop=True)


def format_table(table: pd.DataFrame) -> pd.DataFrame:
    """Numbers as people read them: 3 decimals for rates, thousands separators for counts."""
    out = table.copy()
    for column in out.columns:
        if column in ("accuracy", "macro F1", "balanced acc."):
            out[column] = out[column].map(lambda v: "" if pd.isna(v) else f"{v:.4f}")
        elif column == "ours - published":
            out[column] = out[column].map(lambda v: "" if pd.isna(v) else f"{v:+.4f}")
        elif column == "train s":
            out[column] = out[column].map(lambda v: f"{v:.1f}")
        elif column in ("parameters", "inference img/s"):
            out[column] = out[column].map(lambda v: f"{v:,.0f}")
    return out


def markdown_table(table: pd.DataFrame) -> str:
    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(table.columns))) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def dataset_line(results: Results, dataset: str) -> str:
    row = results.leaderboard[results.leaderboard.dataset == dataset].iloc[0]
    classes = len(next(v for k, v in results.confusion.items() if k[0] == dataset)["classes"])
    return f"{classes} classes, {int(row.test_images)} test images"


def readme(results: Results, params: Params, meta: dict, figure_files: dict) -> str:
    lines = [f"# {params.report.title}", "",
             f"Generated {meta['date']} from commit {meta['git_commit']} on {meta['device']}. "
             "Open `index.html` for the full report.", ""]
    for dataset in results.datasets:
        best = results.best(dataset)
        accuracy = results.leaderboard.query("dataset == @dataset and recipe == @best").accuracy.iloc[0]
        lines += [f"## {dataset} ({dataset_line(results, dataset)})", "",
                  f"Best: **{best}** with test accuracy {accuracy:.4f}.", "",
                  markdown_table(format_table(leaderboard_table(results, dataset))), ""]
        lines += [f"![{path}]({path})" for path in figure_files.get(dataset, [])] + [""]
    lines += ["## Overview", ""] + [f"![{path}]({path})" for path in figure_files["overview"]] + [""]
    lines += ["## Run", "", f"- params.yaml md5: {meta['params_md5']}", f"- python {meta['python']}",
              "- " + ", ".join(f"{k} {v}" for k, v in meta["libraries"].items()), ""]
    return "\n".join(lines)


def number_or_blank(value) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.4f}"
