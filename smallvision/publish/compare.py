"""One comparison type and one verdict vocabulary, for the results pages, the index, the headline
and the report alike; and the one rule that chooses an arm: validation, never test.

A comparison is a difference with the Student-t interval of its mean: paired over the seeds two
arms share (a seed's runs share the split, so seed-to-seed variation that moves both cancels),
or Welch's from two summaries where they share fewer than two, or one arm's seeds against a
fixed published value. Its verdict is one of VERDICTS."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

ABOVE, BELOW, NOISE = "above", "below", "within noise"
IDENTICAL = "identical over seeds"  # every seed differed alike (no spread): no interval can be drawn
NO_INTERVAL = "no interval"  # fewer than two values
VERDICTS = (ABOVE, BELOW, NOISE, IDENTICAL, NO_INTERVAL)
CHOOSE_BY = "val_accuracy"  # what a "best" is chosen by: the validation split's accuracy, mean over seeds
ZERO_SPREAD = 1e-12  # values closer than this are equal: float rounding, not seed variation


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


def welch_difference(a: tuple[float, float, int], b: tuple[float, float, int],
                     confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean a - mean b, low, high) from two summaries (mean, sample std, n): Welch's interval,
    for where only the summaries are kept (docs/results pages). It does not pair seeds, so it is
    wider than a paired comparison's when seeds move both recipes alike. n < 2 on either side: NaN
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


@dataclass(frozen=True)
class Comparison:
    difference: float  # mean of one minus the other
    low: float  # the interval of that mean (NaN: none)
    high: float
    n: int  # seeds paired, or the smaller of the two counts (Welch), or the arm's seeds (against a value)
    how: str  # "paired", "Welch" or "against the published value"

    @property
    def verdict(self) -> str:
        if self.n < 2 or math.isnan(self.low):
            return NO_INTERVAL
        if self.high == self.low:
            return IDENTICAL
        return ABOVE if self.low > 0 else BELOW if self.high < 0 else NOISE

    @property
    def half(self) -> float:
        return (self.high - self.low) / 2

    def text(self, digits: int = 3) -> str:
        """'+0.012 ± 0.010, above' (or 'identical over seeds' / 'no interval' in place of the ±)."""
        if self.verdict in (IDENTICAL, NO_INTERVAL):
            return f"{self.difference:+.{digits}f} ({self.verdict})"
        return f"{self.difference:+.{digits}f} ± {self.half:.{digits}f}, {self.verdict}"


def paired(ours: dict, theirs: dict, confidence: float) -> Comparison | None:
    """`ours` minus `theirs` over the seeds both have (per-seed figures keyed by seed); None with
    no seed in common."""
    seeds = sorted(set(ours) & set(theirs))
    if not seeds:
        return None
    mean, _, n, low, high = interval([ours[seed] - theirs[seed] for seed in seeds], confidence)
    return Comparison(mean, low, high, n, "paired")


def welch(ours: list[float], theirs: list[float], confidence: float) -> Comparison:
    """Two arms that share fewer than two seeds: Welch's interval from their two summaries."""
    a, b = interval(ours, confidence), interval(theirs, confidence)
    difference, low, high = welch_difference((a[0], a[1], a[2]), (b[0], b[1], b[2]), confidence)
    return Comparison(difference, low, high, min(a[2], b[2]), "Welch")


def between(ours: dict, theirs: dict, confidence: float) -> Comparison:
    """Paired where two or more seeds are shared, else Welch's."""
    shared = paired(ours, theirs, confidence)
    if shared is not None and shared.n >= 2:
        return shared
    return welch(list(ours.values()), list(theirs.values()), confidence)


def against_value(ours: dict, value: float, confidence: float) -> Comparison:
    """The arm's seeds minus a fixed figure (a published one): the one-sample interval."""
    mean, _, n, low, high = interval([figure - value for figure in ours.values()], confidence)
    return Comparison(mean, low, high, n, "against the published value")


def chosen(means: dict[str, float]) -> str | None:
    """Of candidates with a mean validation figure, the highest (the first name on a tie); None
    when no candidate has one (e.g. every arm trained on train + validation)."""
    scored = {name: value for name, value in means.items() if value is not None and not math.isnan(value)}
    return min(scored, key=lambda name: (-scored[name], name)) if scored else None
