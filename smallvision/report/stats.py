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
from scipy import stats

KEY = ["dataset", "recipe"]
ZERO_SPREAD = 1e-12  # values closer than this are equal: float rounding, not seed variation
IDENTICAL = "identical over seeds"
NOT_TEST_NOISE = ("An interval over seeds leaves out the test set's own sampling noise; *identical over seeds*: every "
                  "seed gave the same figure (a recipe that does not depend on its seed, e.g. kNN on fixed features).")


def interval(values, confidence: float = 0.95) -> tuple[float, float, int, float, float]:
    """(mean, sample std with ddof=1, n, low, high) of the non-NaN values: the Student-t interval
    for the mean, from scipy.stats.t.interval with the standard error scipy.stats.sem."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    n = len(values)
    if n == 0:
        return np.nan, np.nan, 0, np.nan, np.nan
    mean = float(values.mean())
    if n == 1:
        return mean, np.nan, 1, np.nan, np.nan
    if np.ptp(values) <= ZERO_SPREAD:
        return mean, 0.0, n, mean, mean
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=stats.sem(values))
    return mean, float(values.std(ddof=1)), n, float(low), float(high)


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


def _verdict(low: float, n: int, high: float):
    """True when the interval holds 0; None when there is no interval (n < 2)."""
    return None if n < 2 or np.isnan(low) else bool(low <= 0 <= high)


def paired_vs_best(runs: pd.DataFrame, metric: str = "accuracy", confidence: float = 0.95) -> pd.DataFrame:
    """Each recipe against its dataset's best (highest mean; ties go to the first recipe by name).

    Seeds share the splits, so runs of two recipes with the same seed are paired: the interval is
    the one-sample t interval of the per-seed differences (recipe minus best) over the seeds both
    have, which is narrower than comparing two independent means when seeds move both recipes alike.
    tied_with_best: the interval holds 0 (None when fewer than 2 paired seeds). The best recipe's own
    row has diff 0, interval [0, 0], tied_with_best True and is_best True."""
    _check_unique(runs)
    values = runs.dropna(subset=[metric])
    rows = []
    for dataset, group in values.groupby("dataset", sort=True):
        by_seed = group.pivot(index="seed", columns="recipe", values=metric)
        means = by_seed.mean().sort_index()
        best = means.idxmax()
        for recipe in sorted(runs[runs.dataset == dataset].recipe.unique()):
            row = {"dataset": dataset, "recipe": recipe, "best_recipe": best, "is_best": recipe == best,
                   "mean": means.get(recipe, np.nan)}
            if recipe == best:
                n = int(by_seed[best].notna().sum())
                rows.append({**row, "diff_mean": 0.0, "diff_ci_low": 0.0, "diff_ci_high": 0.0, "diff_n": n,
                             "tied_with_best": True})
                continue
            pairs = by_seed[[recipe, best]].dropna() if recipe in by_seed else by_seed[[]]
            diffs = pairs[recipe] - pairs[best] if len(pairs) else []
            mean, _, n, low, high = interval(diffs, confidence)
            rows.append({**row, "diff_mean": mean, "diff_ci_low": low, "diff_ci_high": high, "diff_n": n,
                         "tied_with_best": _verdict(low, n, high)})
    return pd.DataFrame(rows)


def welch_difference(a: tuple[float, float, int], b: tuple[float, float, int],
                     confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean a - mean b, low, high) from two summaries (mean, sample std, n): Welch's interval,
    for where only the summaries are kept (docs/results pages). It does not pair seeds, so it is
    wider than paired_vs_best's when seeds move both recipes alike. n < 2 on either side: NaN
    interval; no spread on both sides: [difference, difference], as `interval` does."""
    (mean_a, std_a, n_a), (mean_b, std_b, n_b) = a, b
    difference = float(mean_a - mean_b)
    if n_a < 2 or n_b < 2 or np.isnan(std_a) or np.isnan(std_b):
        return difference, np.nan, np.nan
    var_a, var_b = std_a ** 2 / n_a, std_b ** 2 / n_b
    if var_a + var_b <= ZERO_SPREAD ** 2:
        return difference, difference, difference
    dof = (var_a + var_b) ** 2 / (var_a ** 2 / (n_a - 1) + var_b ** 2 / (n_b - 1))  # Welch-Satterthwaite
    low, high = stats.t.interval(confidence, dof, loc=difference, scale=np.sqrt(var_a + var_b))
    return difference, float(low), float(high)


def against_published(runs: pd.DataFrame, published: dict, confidence: float = 0.95) -> pd.DataFrame:
    """Ours minus the published figure, published = {(dataset, recipe): (metric, value)}.

    The published value is a fixed number, so the interval is the one-sample t interval of
    (ours - value) over our seeds. better: the interval lies entirely above 0, worse: entirely
    below; otherwise the gap is within seed noise. With n < 2 both are None. verdict says it in
    words: "better", "worse", "within noise", "unknown (1 run)" or "no runs"."""
    _check_unique(runs)
    rows = []
    for (dataset, recipe), (metric, value) in published.items():
        ours = runs[(runs.dataset == dataset) & (runs.recipe == recipe)]
        ours = ours[metric].dropna() if metric in ours.columns else pd.Series(dtype=float)
        mean, _, n, low, high = interval(ours - value, confidence)
        better = None if n < 2 else bool(low > 0)
        worse = None if n < 2 else bool(high < 0)
        verdict = ("no runs" if n == 0 else "unknown (1 run)" if n == 1 else
                   "better" if better else "worse" if worse else "within noise")
        rows.append({"dataset": dataset, "recipe": recipe, "metric": metric, "published": value,
                     "ours_mean": ours.mean() if n else np.nan, "diff_mean": mean, "diff_ci_low": low,
                     "diff_ci_high": high, "n": n, "better": better, "worse": worse, "verdict": verdict})
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
