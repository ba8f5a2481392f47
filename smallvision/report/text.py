"""Tables and Markdown text of the report."""

from __future__ import annotations

import numpy as np
import pandas as pd

from smallvision.options.params import Params
from smallvision.report.collect import Results
from smallvision.report.escape import markdown_text
from smallvision.report.stats import IDENTICAL, NOT_TEST_NOISE, describe


def leaderboard_table(results: Results, dataset: str) -> pd.DataFrame:
    """One row per recipe, best mean first, as people read it: the mean test accuracy and macro
    F1 over seeds with their intervals, the paired difference to the best recipe (same seeds and
    splits) and whether it is within the noise, and the seed's figure beside ours."""
    rows = results.leaderboard[results.leaderboard.dataset == dataset]
    rows = rows.sort_values(["accuracy", "recipe"], ascending=[False, True])
    confidence = f"{results.confidence:.0%}"
    table = pd.DataFrame({
        "recipe": rows.recipe,
        f"accuracy (± {confidence} CI)": [interval_text(row, "accuracy") for row in rows.itertuples()],
        "vs best": [versus_best(row) for row in rows.itertuples()],
        "macro F1": [interval_text(row, "macro_f1") for row in rows.itertuples()],
        "train s": rows.train_seconds.map(lambda v: f"{v:.1f}"),
        "parameters": rows.parameters.map(lambda v: f"{v:,.0f}"),
        "inference img/s": rows.inference_images_per_second.map(lambda v: f"{v:,.0f}"),
        "published (seed)": [published_text(row) for row in rows.itertuples()],
        "ours - published": [versus_published(row) for row in rows.itertuples()],
    })
    target = rows.reach_target.dropna() if "reach_target" in rows else pd.Series(dtype=float)
    if len(target):  # the seed published a figure for this dataset: how soon each recipe got there
        table[reach_header(target.iloc[0], rows.reach_seed_minutes.iloc[0])] = [
            reach_text(row.reach_n, row.reach_seconds, int(row.n_seeds)) for row in rows.itertuples()]
    return table.reset_index(drop=True)


def reach_header(target: float, seed_minutes: float) -> str:
    seed_time = "" if pd.isna(seed_minutes) else f"; the seed took {seed_minutes:.0f} min"
    return f"time to seed's {target:.3f} (val{seed_time})"


def reach_text(reached: float, seconds: float, runs: int) -> str:
    """`reached` of `runs` seeds got to the seed's figure, in `seconds` on average; NaN: no curve."""
    if pd.isna(reached):
        return ""
    if not reached:
        return f"not reached (0 of {runs})"
    return f"{seconds:.0f} s ({int(reached)} of {runs} seeds)"


def interval_text(row, metric: str) -> str:
    return describe(getattr(row, metric), getattr(row, f"{metric}_ci_low"), getattr(row, f"{metric}_ci_high"),
                    int(getattr(row, f"{metric}_n")))


def versus_best(row) -> str:
    """'best', or the paired difference to the best with 'tied' when its interval holds 0."""
    if row.is_best:
        return "best"
    difference = f"{row.diff_mean:+.3f}"
    if row.tied_with_best is None or pd.isna(row.tied_with_best):
        return f"{difference} (1 paired run, no interval)"
    half = (row.diff_ci_high - row.diff_ci_low) / 2
    if half == 0:
        return f"{difference} ({IDENTICAL})"
    return f"{difference} ± {half:.3f}" + (", tied with best" if row.tied_with_best else "")


def published_text(row) -> str:
    return f"{row.reference_metric.replace('_', ' ')} {row.reference_value:.3f}" if row.reference_metric else ""


def versus_published(row) -> str:
    if not row.reference_metric or pd.isna(getattr(row, "published_diff", np.nan)):
        return ""
    difference = f"{row.published_diff:+.3f}"
    if pd.isna(row.published_diff_low):
        return f"{difference} (1 run)"
    return f"{difference} ± {(row.published_diff_high - row.published_diff_low) / 2:.3f} ({row.published_verdict})"


def markdown_table(table: pd.DataFrame) -> str:
    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(table.columns))) + "|"
    body = ["| " + " | ".join(markdown_text(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def dataset_line(results: Results, dataset: str) -> str:
    row = results.leaderboard[results.leaderboard.dataset == dataset].iloc[0]
    classes = len(next(v for k, v in results.confusion.items() if k[0] == dataset)["classes"])
    seeds = sorted(set(results.runs[results.runs.dataset == dataset].seed))
    return (f"{classes} classes, {int(row.test_images)} test images; "
            f"{len(seeds)} seed(s) per recipe ({', '.join(map(str, seeds))})")


def best_line(results: Results, dataset: str) -> str:
    best = results.best(dataset)
    row = results.leaderboard.query("dataset == @dataset and recipe == @best").iloc[0]
    tied = results.leaderboard.query("dataset == @dataset and recipe != @best and tied_with_best == True").recipe
    line = f"Best mean: **{best}**, test accuracy {interval_text(row, 'accuracy')}."
    if len(tied):
        line += f" Within the noise of it (paired interval holds 0): {', '.join(tied)}."
    return line


def readme(results: Results, params: Params, meta: dict, figure_files: dict) -> str:
    lines = [f"# {markdown_text(params.report.title)}", "",
             f"Generated {meta['date']} from commit {meta['git_commit']} on {meta['device']}. "
             "Open `index.html` for the full report. ± is the half-width of the "
             f"{results.confidence:.0%} Student-t interval over seeds. {NOT_TEST_NOISE}", ""]
    for dataset in results.datasets:
        lines += [f"## {dataset} ({dataset_line(results, dataset)})", "", best_line(results, dataset), "",
                  markdown_table(leaderboard_table(results, dataset)), ""]
        lines += [f"![{path}]({path})" for path in figure_files.get(dataset, [])] + [""]
    lines += ["## Overview", ""] + [f"![{path}]({path})" for path in figure_files["overview"]] + [""]
    lines += ["## Run", "", f"- params.yaml md5: {meta['params_md5']}", f"- CPU: {meta['cpu']}",
              f"- python {meta['python']}",
              "- " + ", ".join(f"{k} {v}" for k, v in meta["libraries"].items()), ""]
    return "\n".join(lines)
