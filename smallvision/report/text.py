"""Tables and Markdown text of the report."""

from __future__ import annotations

import numpy as np
import pandas as pd

from smallvision.options.params import Params
from smallvision.publish.compare import Comparison
from smallvision.report.collect import Results
from smallvision.report.escape import markdown_text
from smallvision.report.stats import NOT_TEST_NOISE, describe


def leaderboard_table(results: Results, dataset: str) -> pd.DataFrame:
    """One row per arm, best mean validation accuracy first, as people read it: the validation
    accuracy that chooses, the mean test accuracy and macro F1 over seeds with their intervals,
    the paired difference to the arm chosen on validation (same seeds and splits) and its verdict,
    and the seed's figure beside ours."""
    rows = results.leaderboard[results.leaderboard.dataset == dataset].set_index("recipe", drop=False)
    rows = rows.loc[results.by_validation(dataset)]
    confidence = f"{results.confidence:.0%}"
    table = pd.DataFrame({
        "arm": rows.recipe,
        "val accuracy": rows.val_accuracy.map(lambda v: "" if pd.isna(v) else f"{v:.3f}") if "val_accuracy" in rows
        else "",
        f"test accuracy (± {confidence} CI)": [interval_text(row, "accuracy") for row in rows.itertuples()],
        "vs chosen": [versus_chosen(row) for row in rows.itertuples()],
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


def versus_chosen(row) -> str:
    """'chosen', or the paired difference to the arm chosen on validation, in the shared vocabulary."""
    if row.is_chosen:
        return "chosen"
    if pd.isna(row.diff_mean):
        return ""
    return Comparison(row.diff_mean, row.diff_ci_low, row.diff_ci_high, int(row.diff_n), "paired").text()


def published_text(row) -> str:
    return f"{row.reference_metric.replace('_', ' ')} {row.reference_value:.3f}" if row.reference_metric else ""


def versus_published(row) -> str:
    if not row.reference_metric or pd.isna(getattr(row, "published_diff", np.nan)):
        return ""
    return Comparison(row.published_diff, row.published_diff_low, row.published_diff_high, int(row.published_n),
                      "against the published value").text()


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
    chosen = results.chosen(dataset)
    if chosen is None:
        return "No arm chosen: no arm has a validation figure (no validation split); the table's order is by name."
    row = results.leaderboard.query("dataset == @dataset and recipe == @chosen").iloc[0]
    tied = results.leaderboard.query("dataset == @dataset and recipe != @chosen and verdict == 'within noise'").recipe
    line = (f"Chosen on validation: **{chosen}** (mean validation accuracy {row.val_accuracy:.3f}), test accuracy "
            f"{interval_text(row, 'accuracy')}.")
    if len(tied):
        line += f" Within the noise of it on test (paired interval holds 0): {', '.join(tied)}."
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
