"""Data-efficiency curves: each approach's test accuracy against the training images per class it
saw (1, 2, 5, ... and its whole split), with the interval over seeds, and where one approach's
curve passes another's. A curve is the arms of one track arm's `per_class` list and the arm itself
(the whole split), all tested on the same validation and test images."""

from __future__ import annotations

import math
from pathlib import Path

from smallvision.publish.compare import between
from smallvision.publish.model import Arm, Page
from smallvision.report.stats import describe

WHOLE = "all"


def curves(page: Page, arms: list[Arm]) -> dict[str, dict[int | str, Arm]]:
    """curve name -> images per class (WHOLE for the whole split) -> its arm."""
    found: dict[str, dict[int | str, Arm]] = {}
    for arm in arms:
        if arm.curve:
            found.setdefault(arm.curve, {})[arm.train_per_class or WHOLE] = arm
    return {name: points for name, points in found.items() if len(points) > 1}


def sizes(points: dict[str, dict]) -> list[int | str]:
    numbers = sorted({k for curve in points.values() for k in curve if k != WHOLE})
    return numbers + ([WHOLE] if any(WHOLE in curve for curve in points.values()) else [])


def crossovers(points: dict[str, dict[int | str, Arm]], metric: str = "accuracy", confidence: float = 0.95) -> list[str]:
    """'`finetune` passes `probe` at 5 images per class': for each ordered pair of curves, the
    smallest size from which the first's mean stays above the second's at every larger size, where
    it was below it at the size before; with the difference there, paired over seeds, which says
    whether the passing is within the noise."""
    lines = []
    for first, ours in points.items():
        for second, theirs in points.items():
            if first == second:
                continue
            shared = [k for k in sizes({first: ours, second: theirs}) if k in ours and k in theirs]
            above = [ours[k].mean(metric) > theirs[k].mean(metric) for k in shared]
            if not above or above[0] or not above[-1]:
                continue
            start = max(i for i, flag in enumerate(above) if not flag) + 1
            at, before = shared[start], shared[start - 1]
            where = "the whole training split" if at == WHOLE else f"{at} image(s) per class"
            there = between(ours[at].figures(metric), theirs[at].figures(metric), confidence).text()
            lines.append(f"- `{first}` passes `{second}` at {where} (below it at {before}, above from there on, by mean "
                         f"test {metric.replace('_', ' ')}; the difference there: {there})")
    return lines


def figure_name(page: Page, dataset: str) -> str:
    return f"{page.track}_{dataset}_data_efficiency.png"


def section(page: Page, dataset: str, arms: list[Arm]) -> list[str]:
    points = curves(page, arms)
    if not points:
        return []
    columns = sizes(points)
    lines = ["### Data efficiency", "",
             f"Test accuracy (mean ± {page.confidence:.0%} Student-t interval over seeds) against the training images "
             "per class each arm saw, drawn afresh for each seed (so the interval covers which images were drawn); "
             "the validation and test images are the same at every size. *all*: the whole training split.", "",
             f"![data efficiency]({figure_name(page, dataset)})", "",
             "| approach | " + " | ".join(str(k) for k in columns) + " |", "|---|" + "---|" * len(columns)]
    for name, curve in points.items():
        cells = []
        for k in columns:
            arm = curve.get(k)
            cells.append(describe(*arm.summary("accuracy", page.confidence)) if arm else "")
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    found = crossovers(points, confidence=page.confidence)
    lines += [""] + (["Where one curve passes another:", "", *found] if found else
                     ["No curve passes another: their order is the same at every size."]) + [""]
    return lines


def draw(page: Page, dataset: str, arms: list[Arm], folder: Path) -> Path | None:
    """The curves as a figure beside the page (log axis of images per class, a band per curve)."""
    points = curves(page, arms)
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    whole = split_per_class(page, dataset)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, curve in points.items():
        xs, means, lows, highs = [], [], [], []
        for k, arm in sorted(curve.items(), key=lambda item: whole if item[0] == WHOLE else item[0]):
            mean, low, high, _ = arm.summary("accuracy", page.confidence)
            xs.append(whole if k == WHOLE else k)
            means.append(mean)
            lows.append(mean if math.isnan(low) else low)
            highs.append(mean if math.isnan(high) else high)
        ax.plot(xs, means, marker="o", label=name)
        ax.fill_between(xs, lows, highs, alpha=0.2)
    ax.set_xscale("log")
    ax.set_xlabel("training images per class (log scale; the last point: the whole split)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{page.track}, {dataset}: data efficiency")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    path = folder / figure_name(page, dataset)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def split_per_class(page: Page, dataset: str) -> float:
    """The whole training split's mean images per class: where the 'all' point stands on the axis."""
    split = page.splits[dataset]
    return split.train_images / max(split.classes, 1)
