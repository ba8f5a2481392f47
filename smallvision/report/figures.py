"""Seaborn figures of the results. Each function returns a matplotlib Figure."""

from __future__ import annotations

import textwrap

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from smallvision.publish.compare import interval  # noqa: E402
from smallvision.report.collect import pareto_front  # noqa: E402

LEGEND_ROWS_PER_INCH = 4.4  # legend entries at fontsize 8 that one inch of figure height holds


def legend_columns(entries: int, height_inches: float) -> int:
    """Columns a legend of `entries` needs so that it fits the figure's height: a study of many
    recipes (the `full` one has 30) would overflow one column, and tight_layout gives up."""
    rows = max(1, int(LEGEND_ROWS_PER_INCH * height_inches))
    return max(1, -(-entries // rows))


def legend_column_inches(labels: list[str]) -> float:
    """Width of one legend column at fontsize 8: the marker plus the longest label (about 0.06
    inch a character), so a figure can grow by its legend's columns instead of squeezing its axes."""
    return 0.5 + 0.06 * max(map(len, labels), default=0)

sns.set_theme(style="whitegrid", context="notebook")


def accuracy_bars(runs: pd.DataFrame, leaderboard: pd.DataFrame, confidence: float = 0.95) -> plt.Figure:
    """Mean test accuracy over seeds per recipe, with its Student-t interval as the error bar."""
    frame = leaderboard.sort_values("accuracy", ascending=False)
    height = 0.5 + 0.35 * frame.recipe.nunique() * max(1, frame.dataset.nunique())
    fig, ax = plt.subplots(figsize=(8, max(2.5, height)))
    sns.barplot(runs, x="accuracy", y="recipe", hue="dataset", ax=ax, orient="h",
                order=list(dict.fromkeys(frame.recipe)), errorbar=lambda values: interval(values, confidence)[3:],
                capsize=0.2, err_kws={"linewidth": 1.2})
    for container in ax.containers:
        ax.bar_label(container, fmt="%.3f", label_type="center", color="white", fontsize=9)
    reference = frame[frame.reference_metric == "accuracy"]
    if len(reference):
        ax.scatter(reference.reference_value, reference.recipe, marker="|", s=300, color="black",
                   label="published accuracy (seed)", zorder=5)
    lowest = min(frame.accuracy.min(), reference.reference_value.min() if len(reference) else 1.0)
    low = max(0.0, np.floor((lowest - 0.05) * 10) / 10)
    ax.set_xlim(low, 1.0 + (1.0 - low) * 0.08)  # zoomed in, so the gaps between recipes show
    ax.set_xlabel("test accuracy")
    ax.legend(loc="lower right", fontsize=9)
    ax.set_title(f"Test accuracy per recipe (mean over seeds, bar: {confidence:.0%} interval)")
    fig.tight_layout()
    return fig


def accuracy_vs_time(leaderboard: pd.DataFrame) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    sns.scatterplot(leaderboard, x="train_seconds", y="accuracy", hue="recipe", style="dataset", s=90, ax=ax)
    for dataset, rows in leaderboard.groupby("dataset"):
        front = rows[pareto_front(rows)].sort_values("train_seconds")
        ax.plot(front.train_seconds, front.accuracy, "--", color="grey", linewidth=1,
                label=f"Pareto front ({dataset})")
    label_points(ax, leaderboard)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("training time (s, log scale)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Accuracy vs training time (dashed: Pareto front)")
    labels = ax.get_legend_handles_labels()[1]
    columns = legend_columns(len(labels), 4.5)
    # The legend sits right of the axes: the figure widens with it, or tight_layout gives up.
    fig.set_size_inches(5.5 + columns * legend_column_inches(labels), 4.5)
    ax.legend(fontsize=8, bbox_to_anchor=(1.02, 1), loc="upper left", ncol=columns)
    fig.tight_layout()
    return fig


def label_points(ax, leaderboard: pd.DataFrame) -> None:
    """Each point's recipe name beside it: to its right, or to its left in the right quarter of
    the (log) time axis, so that no name runs past the axes into the legend."""
    seconds = np.log(leaderboard.train_seconds.clip(lower=1e-3))
    span = max(seconds.max() - seconds.min(), 1e-9)
    for (_, row), position in zip(leaderboard.iterrows(), (seconds - seconds.min()) / span):
        left = position > 0.75
        ax.annotate(row.recipe, (row.train_seconds, row.accuracy), textcoords="offset points",
                    xytext=(-5 if left else 5, 4), ha="right" if left else "left", fontsize=8)


def confusion_heatmap(confusion: dict, title: str) -> plt.Figure:
    matrix = np.asarray(confusion["matrix"], dtype=float)
    names = confusion["classes"]
    normalised = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    size = min(12, 2.5 + 0.45 * len(names))
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    sns.heatmap(normalised, annot=matrix.astype(int) if len(names) <= 15 else False, fmt="d", cmap="Blues",
                xticklabels=names, yticklabels=names, vmin=0, vmax=1, ax=ax, cbar_kws={"label": "row share"})
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def worst_classes(per_class: pd.DataFrame, count: int, title: str) -> plt.Figure:
    """The `count` classes of lowest F1 (the most test images first among equals), each bar with its
    value. Classes at F1 = 0 have no bar to see: the figure says how many there are, and when they
    fill every bar it names them instead of drawing empty bars (a folder of 498 classes of about 6
    images once showed ten bars of length 0 and hundreds more at 0 unsaid)."""
    frame = per_class.sort_values(["f1", "support"], ascending=[True, False]).head(count)
    frame = frame.assign(label=frame["class"].astype(str))  # class names like "3" are names, not numbers
    zero = int((per_class.f1 == 0).sum())
    if zero >= len(frame):
        names = ", ".join(frame.label) + (", ..." if zero > len(frame) else "")
        return text_panel(title, f"{zero} of {len(per_class)} classes have F1 = 0 on the test split: none of their "
                                 f"test images was predicted right. With the most test images: {names}")
    fig, ax = plt.subplots(figsize=(7, 1.1 + 0.3 * len(frame)))
    sns.barplot(frame, x="f1", y="label", ax=ax, color="#d9534f", orient="h")
    ax.bar_label(ax.containers[0], fmt="%.2f", padding=3, fontsize=8)
    ax.set_ylabel("class")
    ax.set_xlim(0, 1.08)
    ax.set_title(title + (f"\n{zero} of {len(per_class)} classes at F1 = 0" if zero else ""))
    fig.tight_layout()
    return fig


def text_panel(title: str, text: str) -> plt.Figure:
    """A figure that says, in words, what its chart cannot show."""
    fig, ax = plt.subplots(figsize=(7, 1.6))
    ax.axis("off")
    ax.text(0.5, 0.5, "\n".join(textwrap.wrap(text, 90)), ha="center", va="center", fontsize=10,
            transform=ax.transAxes)
    ax.set_title(title)
    return fig


def misclassified_gallery(images: np.ndarray, predictions: pd.DataFrame, count: int, title: str) -> plt.Figure | None:
    """Test images the recipe got wrong, most confident mistakes first."""
    wrong = predictions[~predictions.correct.astype(bool)].sort_values("confidence", ascending=False).head(count)
    if wrong.empty:
        return None
    columns = min(6, len(wrong))
    rows = int(np.ceil(len(wrong) / columns))
    # Constrained layout, not tight_layout: it places the two-line titles after imshow has
    # shrunk each axes to its square image, so a row's titles clear the images above them.
    fig, axes = plt.subplots(rows, columns, figsize=(2.1 * columns, 2.6 * rows), squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, (index, row) in zip(axes.flat, wrong.iterrows()):
        image = images[index].transpose(1, 2, 0)
        ax.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray" if image.shape[-1] == 1 else None)
        ax.set_title(f"true: {row.actual}\npred: {row.predicted} ({row.confidence:.2f})", fontsize=8)
    fig.suptitle(title)
    return fig


def gradcam_grid(images: np.ndarray, overlaid: list[np.ndarray], truth: list[str], predicted: list[str],
                 title: str) -> plt.Figure:
    """Each test image beside its Grad-CAM overlay, with true and predicted class."""
    columns = min(4, len(images))
    rows = int(np.ceil(len(images) / columns))
    fig, axes = plt.subplots(rows, 2 * columns, figsize=(2.0 * 2 * columns, 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for index, (image, overlay) in enumerate(zip(images, overlaid)):
        row, column = divmod(index, columns)
        picture = image.transpose(1, 2, 0)
        axes[row, 2 * column].imshow(picture.squeeze(-1) if picture.shape[-1] == 1 else picture,
                                     cmap="gray" if picture.shape[-1] == 1 else None)
        axes[row, 2 * column].set_title(f"true: {truth[index]}", fontsize=8)
        axes[row, 2 * column + 1].imshow(overlay)
        mark = "" if truth[index] == predicted[index] else " (wrong)"
        axes[row, 2 * column + 1].set_title(f"pred: {predicted[index]}{mark}", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


# What an empty learning-curve panel means.
NO_CURVE = {"val_accuracy": "No validation curve: no run logged a validation accuracy\n"
                            "(the dataset has no validation split: val_fraction: 0)"}


def learning_curves_band(band: pd.DataFrame, dataset: str, metrics: tuple[str, ...] = ("val_accuracy", "train_loss"),
                         confidence: float = 0.95) -> plt.Figure:
    """Learning curves over seeds: the mean per recipe as a line, its t interval as a shaded band
    (stats.curve_band's output, made with the same confidence; steps with one seed have no band)."""
    rows = band[band.dataset == dataset]
    recipes = sorted(rows.recipe.unique())
    height, columns = 3.8, legend_columns(len(recipes), 3.8)
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics) + 1.6 * columns, height), squeeze=False)
    colours = dict(zip(recipes, sns.color_palette(n_colors=max(1, len(recipes)))))
    lines = {}  # one legend for all panels, beside the last: the recipes are the same in each
    for ax, metric in zip(axes.flat, metrics):
        if not (rows.metric == metric).any():  # say so, rather than draw an empty 0-1 chart
            ax.axis("off")
            ax.text(0.5, 0.5, NO_CURVE.get(metric, f"no run logged {metric.replace('_', ' ')}"), ha="center",
                    va="center", fontsize=10, wrap=True, transform=ax.transAxes)
            continue
        for recipe, curve in rows[rows.metric == metric].sort_values("step").groupby("recipe"):
            lines[recipe], = ax.plot(curve.step, curve["mean"], marker="o", markersize=4, color=colours[recipe])
            ax.fill_between(curve.step, curve.low, curve.high, color=colours[recipe], alpha=0.2, linewidth=0)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric.replace("_", " "))
        if metric == "train_loss":
            ax.set_yscale("log")
    if lines:
        named = sorted(lines.items())
        axes.flat[-1].legend([line for _, line in named], [name for name, _ in named], fontsize=8,
                             bbox_to_anchor=(1.02, 1), loc="upper left", ncol=legend_columns(len(named), height))
    fig.suptitle(f"Learning curves: {dataset} (mean over seeds, band: {confidence:.0%} interval)")
    fig.tight_layout()
    return fig


def data_efficiency(points: pd.DataFrame, dataset: str) -> plt.Figure | None:
    """Test accuracy against training images per class (log axis), one line per approach with its
    interval band over seeds. `points`: curve, per_class, accuracy, accuracy_ci_low, accuracy_ci_high."""
    if points.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, curve in points.sort_values("per_class").groupby("curve", sort=True):
        ax.plot(curve.per_class, curve.accuracy, marker="o", label=name)
        ax.fill_between(curve.per_class, curve.accuracy_ci_low.fillna(curve.accuracy),
                        curve.accuracy_ci_high.fillna(curve.accuracy), alpha=0.2)
    ax.set_xscale("log")
    ax.set_xlabel("training images per class (log scale; the last point: the whole split)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{dataset}: data efficiency")
    ax.legend(fontsize=8)
    return fig
