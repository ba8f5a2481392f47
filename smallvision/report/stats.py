"""Statistics over seeds: means with Student-t intervals, paired comparisons, curve bands.

Every (dataset, recipe) is trained with several seeds on the same splits, so the spread measured
here is seed-to-seed variation (initialisation, data order, augmentation draws) only; it says
nothing about how the test set itself was sampled. With 3-5 seeds a normal interval would be far
too narrow, hence Student-t (from scipy, never a hand-written quantile). Intervals are per
comparison, without a multiple-comparison correction. Conventions used everywhere:

* n < 2 values: no interval (NaN), and any verdict drawn from it is None ("unknown");
* values all equal (n >= 2): std 0 and the interval [mean, mean]; scipy would return NaN for a
  zero scale, which would wrongly read as "unknown" when the seeds agree exactly;
* NaN metric values are dropped, and a (dataset, recipe, seed) appearing twice is an error,
  since counting one run twice would shrink the interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from smallvision.publish.compare import IDENTICAL, Comparison, chosen, interval

KEY = ["dataset", "recipe"]
NOT_TEST_NOISE = ("An interval over seeds leaves out the test set's own sampling noise; *identical over seeds*: every "
                  "seed gave the same figure (a recipe that does not depend on its seed, e.g. kNN on fixed features).")


def _check_unique(runs: pd.DataFrame) -> None:
    repeated = runs.duplicated(KEY + ["seed"])
    if repeated.any():
        raise ValueError(f"runs repeated for the same seed: {runs[repeated][KEY + ['seed']].to_dict('records')}")


def summarise(runs: pd.DataFrame, metrics=("accuracy", "macro_f1"), confidence: float = 0.95) -> pd.DataFrame:
    """One row per (dataset, recipe) from one row per run (dataset, recipe, seed, metrics...):
    for each metric m the columns m (mean), m_std, m_n, m_ci_low, m_ci_high, then n_seeds and
    seeds (sorted list). m_n counts the seeds with a value for m, which can be below n_seeds."""
    missing = [m for m in metrics if m not in runs.columns]
    if missing:
        raise ValueError(f"runs have no column {missing}")
    _check_unique(runs)
    rows = []
    for (dataset, recipe), group in runs.groupby(KEY, sort=True):
        row = {"dataset": dataset, "recipe": recipe}
        for m in metrics:
            mean, std, n, low, high = interval(group[m], confidence)
            row.update({m: mean, f"{m}_std": std, f"{m}_n": n, f"{m}_ci_low": low, f"{m}_ci_high": high})
        seeds = sorted(group.seed.unique().tolist())
        rows.append({**row, "n_seeds": len(seeds), "seeds": seeds})
    return pd.DataFrame(rows)


def paired_vs_chosen(runs: pd.DataFrame, metric: str = "accuracy", confidence: float = 0.95,
                     choose_by: str = "val_accuracy") -> pd.DataFrame:
    """Each arm against its dataset's arm chosen on validation (highest mean `choose_by` over
    seeds; ties go to the first arm by name), never on the test split.

    Seeds share the splits, so runs of two arms with the same seed are paired: the interval is the
    one-sample t interval of the per-seed differences (arm minus chosen) over the seeds both have,
    narrower than comparing two independent means when seeds move both arms alike. `verdict` is
    the shared vocabulary (smallvision.publish.compare). Where no arm has a validation figure (a
    dataset without a validation split), none is chosen and the differences are NaN."""
    _check_unique(runs)
    values = runs.dropna(subset=[metric])
    rows = []
    for dataset, group in values.groupby("dataset", sort=True):
        by_seed = group.pivot(index="seed", columns="recipe", values=metric)
        validation = group.groupby("recipe")[choose_by].mean() if choose_by in group else pd.Series(dtype=float)
        best = chosen(validation.to_dict())
        for recipe in sorted(runs[runs.dataset == dataset].recipe.unique()):
            row = {"dataset": dataset, "recipe": recipe, "chosen_recipe": best, "is_chosen": recipe == best,
                   "mean": by_seed[recipe].mean() if recipe in by_seed else np.nan}
            if best is None:
                rows.append({**row, "diff_mean": np.nan, "diff_ci_low": np.nan, "diff_ci_high": np.nan, "diff_n": 0,
                             "verdict": ""})
                continue
            pairs = by_seed[list(dict.fromkeys([recipe, best]))].dropna() if recipe in by_seed else by_seed[[]]
            diffs = pairs[recipe] - pairs[best] if len(pairs) else []
            mean, _, n, low, high = interval(diffs, confidence)
            comparison = Comparison(mean, low, high, n, "paired")
            rows.append({**row, "diff_mean": mean, "diff_ci_low": low, "diff_ci_high": high, "diff_n": n,
                         "verdict": "chosen" if recipe == best else comparison.verdict})
    return pd.DataFrame(rows)


def against_published(runs: pd.DataFrame, published: dict, confidence: float = 0.95) -> pd.DataFrame:
    """Ours minus the published figure, published = {(dataset, recipe): (metric, value)}: the
    one-sample t interval of (ours - value) over our seeds, with the shared verdict ("above",
    "below", "within noise", "no interval"; "no runs" without a figure)."""
    _check_unique(runs)
    rows = []
    for (dataset, recipe), (metric, value) in published.items():
        ours = runs[(runs.dataset == dataset) & (runs.recipe == recipe)]
        ours = ours[metric].dropna() if metric in ours.columns else pd.Series(dtype=float)
        mean, _, n, low, high = interval(ours - value, confidence)
        verdict = "no runs" if n == 0 else Comparison(mean, low, high, n, "against the published value").verdict
        rows.append({"dataset": dataset, "recipe": recipe, "metric": metric, "published": value,
                     "ours_mean": ours.mean() if n else np.nan, "diff_mean": mean, "diff_ci_low": low,
                     "diff_ci_high": high, "n": n, "verdict": verdict})
    return pd.DataFrame(rows)


def describe(mean: float, low: float, high: float, n: int, digits: int = 3) -> str:
    """Table text "mean ± h (n=k)", where h is the half-width of the confidence interval
    (95% by default: (high - low) / 2), not a standard deviation. One run: "mean (1 run, no interval)".
    Every seed the same figure (a recipe that does not depend on its seed, such as kNN on fixed
    features): "mean (n=k, identical over seeds)", where "± 0.000" would read as a certainty that
    the test set's own sampling noise denies."""
    if n == 0 or pd.isna(mean):
        return "n/a"
    if n == 1:
        return f"{mean:.{digits}f} (1 run, no interval)"
    if pd.isna(low) or pd.isna(high):
        return f"{mean:.{digits}f} (n={n}, no interval)"
    if high == low:
        return f"{mean:.{digits}f} (n={n}, {IDENTICAL})"
    return f"{mean:.{digits}f} ± {(high - low) / 2:.{digits}f} (n={n})"


def curve_band(history: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Learning curves over seeds: per (dataset, recipe, metric, step) the mean and t interval
    (low, high; NaN when fewer than 2 seeds logged that step, e.g. after early stopping) and n."""
    rows = []
    for key, group in history.groupby(KEY + ["metric", "step"], sort=True):
        mean, _, n, low, high = interval(group.value, confidence)
        rows.append(dict(zip(KEY + ["metric", "step"], key), mean=mean, low=low, high=high, n=n))
    return pd.DataFrame(rows, columns=KEY + ["metric", "step", "mean", "low", "high", "n"])


def first_reach(history: pd.DataFrame, target, metric: str = "val_accuracy",
                seconds_column: str = "elapsed_seconds", higher: bool = True) -> pd.DataFrame:
    """Per run (dataset, recipe, seed): the first step, and time in seconds_column if history has
    that column, at which metric reaches target (>= target, or <= when higher is False; NaN if never).
    target is a number or a {(dataset, recipe): number} map (e.g. each recipe's published figure;
    runs without an entry are left out)."""
    rows = []
    curves = history[history.metric == metric].sort_values("step")
    for (dataset, recipe, seed), run in curves.groupby(KEY + ["seed"], sort=True):
        goal = target.get((dataset, recipe), np.nan) if isinstance(target, dict) else target
        if pd.isna(goal):
            continue
        hits = run[run.value >= goal] if higher else run[run.value <= goal]
        row = {"dataset": dataset, "recipe": recipe, "seed": seed, "target": goal, "reached": len(hits) > 0,
               "step": hits.step.iloc[0] if len(hits) else np.nan}
        if seconds_column in run.columns:
            row["seconds"] = hits[seconds_column].iloc[0] if len(hits) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def time_to_reach(history: pd.DataFrame, target, metric: str = "val_accuracy",
                  seconds_column: str = "elapsed_seconds", higher: bool = True) -> pd.DataFrame:
    """first_reach summarised per (dataset, recipe): n_runs, n_reached, and step_mean (and
    seconds_mean) over the seeds that reached the target only, NaN when none did. The mean is
    conditional on reaching it, so always report it next to n_reached of n_runs."""
    runs = first_reach(history, target, metric, seconds_column, higher)
    if runs.empty:
        return pd.DataFrame(columns=KEY + ["target", "n_runs", "n_reached", "step_mean"])
    columns = {"step_mean": ("step", "mean")}
    if "seconds" in runs.columns:
        columns["seconds_mean"] = ("seconds", "mean")
    summary = runs.groupby(KEY, sort=True).agg(target=("target", "first"), n_runs=("seed", "size"),
                                               n_reached=("reached", "sum"), **columns)
    return summary.reset_index()
