"""The report's self-supervised section: every pretrained backbone evaluated three ways (kNN,
linear probe, fine-tune), beside the same backbone randomly initialised and ImageNet
weights (the `method: none` recipes), with the pretraining's cost and collapse check."""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from scipy.stats import norm  # noqa: E402

from smallvision.core.io import read_json  # noqa: E402
from smallvision.core.paths import ssl_eval_dir  # noqa: E402
from smallvision.options.params import Params  # noqa: E402
from smallvision.publish.compare import IDENTICAL, interval  # noqa: E402
from smallvision.report.escape import markdown_text  # noqa: E402
from smallvision.report.text import markdown_table  # noqa: E402

COLLAPSE_RATIO = 0.25  # final embedding spread below this share of the initial one: collapsed

INTRO = (
    "Backbones pretrained without labels on each dataset's training split, each evaluated on the test "
    "split by cosine kNN on frozen features, a linear probe and a full fine-tune (the same budgets for "
    "every row), once per seed: a row gives the mean over its seeds, ± the Student-t interval over them "
    "(no ± from one seed). Rows with method *none* are the baselines: the backbone as initialised "
    "(its seed is the random initialisation), randomly or with ImageNet weights. *Spread* is the "
    "per-dimension standard deviation of normalised features x sqrt(dim) before and after pretraining "
    f"(SimSiam's collapse check); a fall below {COLLAPSE_RATIO:.0%} of the start is flagged as collapse. "
    "*Effective rank*, where a table has it, is about how many directions the features vary along "
    "(RankMe) before and after pretraining: its fall is a collapse to a few directions, which the "
    "spread misses. "
    "*vs baseline* compares a pretrained backbone with its starting point (the *none* recipe of the same "
    "backbone and weights; of several, the best on that measure): the mean difference ± its interval (at "
    "the report's confidence), *above* or *below* when the interval excludes 0, else *within noise*. Over "
    "several seeds the differences are paired (seed s pretrained from the initialisation of the "
    "baseline's seed s) and the interval is Student-t over seeds; from one seed it is the interval of "
    "test-set sampling alone, which leaves seed-to-seed spread out."
)


def ssl_results(params: Params, workspace: Path = Path(".")) -> pd.DataFrame:
    """One row per SSL run of `ssl.runs` that has been evaluated (in `workspace`'s reports): its
    dataset, arm (`ssl_recipe`), seed and figures."""
    rows = []
    for run in params.ssl.runs.values():
        path = workspace / ssl_eval_dir(run.dataset, run.arm, run.seed) / "metrics.json"
        if path.exists():
            rows.append({"dataset": run.dataset, "ssl_recipe": run.arm, "seed": run.seed, **read_json(path)})
    return pd.DataFrame(rows)


def per_recipe(frame: pd.DataFrame, dataset: str) -> dict[str, pd.DataFrame]:
    """Each SSL recipe's rows on `dataset`, one per seed, indexed by seed."""
    rows = frame[frame.dataset == dataset]
    return {name: group.set_index("seed").sort_index() for name, group in rows.groupby("ssl_recipe", sort=True)}


def mean_and_half(values: pd.Series, confidence: float) -> tuple[float, float]:
    """The mean over seeds and the half-width of its Student-t interval (NaN from one seed)."""
    mean, _, _, low, high = interval(values, confidence)
    return mean, (high - low) / 2


def figure_text(values: pd.Series, confidence: float, digits: int = 4) -> str:
    mean, half = mean_and_half(values, confidence)
    if half == 0:
        return f"{mean:.{digits}f} ({IDENTICAL})"
    return f"{mean:.{digits}f}" if math.isnan(half) else f"{mean:.{digits}f} ± {half:.{digits}f}"


def baseline_of(name: str, recipes: dict[str, pd.DataFrame], metric: str) -> str | None:
    """The `method: none` recipe the pretrained recipe `name` started from: same backbone, same
    weights; of several (random init with different batch-norm statistics), the best on `metric`
    (mean over seeds), so that a gain is never claimed over a weakened baseline."""
    first = recipes[name].iloc[0]
    if first.method == "none":
        return None
    start = ("none", first.backbone, first.weights)
    same = [(-rows[metric].mean(), other) for other, rows in recipes.items()
            if (rows.method.iloc[0], rows.backbone.iloc[0], rows.weights.iloc[0]) == start]
    return min(same)[1] if same else None


def gain_text(name: str, recipes: dict[str, pd.DataFrame], metric: str, confidence: float) -> str:
    """'+0.031 ± 0.027 above effnet_random': the mean difference from the recipe's baseline on
    their common seeds (see `paired_gain`); '' for a baseline."""
    gain = paired_gain(name, recipes, metric, confidence)
    if gain is None:
        return ""
    difference, half, verdict, base = gain
    return f"{difference:+.3f} ± {half:.3f} {verdict}{' of' if verdict == 'within noise' else ''} {base}"


def paired_gain(name: str, recipes: dict[str, pd.DataFrame], metric: str,
                confidence: float) -> tuple[float, float, str, str] | None:
    """(mean difference, half-width, 'above' / 'below' / 'within noise', baseline) of the recipe
    against its baseline on their common seeds; None for a baseline. Several seeds: the Student-t
    interval of the paired per-seed differences. One seed: the unpaired normal interval of
    test-set sampling of two accuracies on the same test images (conservative: the two are
    positively correlated)."""
    base = baseline_of(name, recipes, metric)
    if base is None:
        return None
    seeds = recipes[name].index.intersection(recipes[base].index)
    ours, theirs = recipes[name].loc[seeds], recipes[base].loc[seeds]
    gain, half = mean_and_half(ours[metric] - theirs[metric], confidence)
    if len(seeds) == 1:
        p, q, images = ours[metric].iloc[0], theirs[metric].iloc[0], ours.test_images.iloc[0]
        half = math.hypot(sampling_half_width(p, images, confidence), sampling_half_width(q, images, confidence))
    verdict = "above" if gain - half > 0 else "below" if gain + half < 0 else "within noise"
    return gain, half, verdict, base


def sampling_half_width(accuracy: float, images: int, confidence: float) -> float:
    """Half-width of the normal interval of an accuracy measured on `images` test images."""
    return norm.ppf(0.5 + confidence / 2) * math.sqrt(accuracy * (1 - accuracy) / images)


def finetune_text(rows: pd.DataFrame, confidence: float) -> str:
    """A recipe's fine-tune accuracy, mean ± the interval over seeds, or from one seed ± the
    interval of test-set sampling (with the number of seeds, which says which)."""
    mean, half = mean_and_half(rows.finetune_accuracy, confidence)
    if len(rows) == 1:
        half = sampling_half_width(mean, rows.test_images.iloc[0], confidence)
        return f"{mean:.3f} ± {half:.3f} (1 SSL seed)"
    return f"{mean:.3f} ± {half:.3f} ({len(rows)} SSL seeds)"


def published_line(frame: pd.DataFrame, dataset: str, published: dict | None, confidence: float) -> str:
    """The seed's published fine-tune accuracy after pretraining without labels (`published`:
    value and source), beside our best pretrained backbone's mean fine-tune with its interval;
    '' when the seed published none for this dataset."""
    best = best_pretrained(frame, dataset)
    if not published or best is None:
        return ""
    name, rows = best
    return (f"Published (seed): fine-tune accuracy {published['value']:.3f} after pretraining without labels "
            f"({markdown_text(published['source'])}). Ours: `{name}` {finetune_text(rows, confidence)}.")


def best_pretrained(frame: pd.DataFrame, dataset: str) -> tuple[str, pd.DataFrame] | None:
    """(name, rows per seed) of the backbone pretrained without labels (not a `none` baseline)
    whose mean fine-tune scored best on this dataset; None when there is none."""
    recipes = per_recipe(frame, dataset)
    pretrained = [(-rows.finetune_accuracy.mean(), name) for name, rows in recipes.items() if rows.method.iloc[0] != "none"]
    if not pretrained:
        return None
    name = min(pretrained)[1]
    return name, recipes[name]


def ssl_table(frame: pd.DataFrame, dataset: str, ks: list[int], confidence: float) -> pd.DataFrame:
    recipes = per_recipe(frame, dataset)
    order = sorted(recipes, key=lambda name: (-recipes[name][f"knn{ks[0]}_accuracy"].mean(), name))
    records = []
    for name in order:
        rows = recipes[name]
        first = rows.iloc[0]
        record = {"SSL recipe": name, "method": first.method, "backbone": f"{first.backbone} ({first.weights})",
                  "seeds": ", ".join(map(str, rows.index))}
        for k in ks:  # every k the study measured gets its paired comparison, not only the one it sorts by
            record[f"kNN@{k}"] = figure_text(rows[f"knn{k}_accuracy"], confidence)
            record[f"kNN@{k} vs baseline"] = gain_text(name, recipes, f"knn{k}_accuracy", confidence)
        record["linear probe"] = figure_text(rows.probe_accuracy, confidence)
        record["linear probe vs baseline"] = gain_text(name, recipes, "probe_accuracy", confidence)
        record["fine-tune"] = figure_text(rows.finetune_accuracy, confidence)
        record["fine-tune vs baseline"] = gain_text(name, recipes, "finetune_accuracy", confidence)
        start, end = rows.embedding_spread_start, rows.embedding_spread
        record["spread start -> end"] = f"{start.mean():.3f} -> {end.mean():.3f}"
        if "embedding_rank" in rows and rows.embedding_rank.notna().all():
            record["effective rank start -> end"] = (f"{rows.embedding_rank_start.mean():.0f} -> "
                                                     f"{rows.embedding_rank.mean():.0f}")
        collapsed = int((end < COLLAPSE_RATIO * start).sum())  # seeds
        record["collapsed"] = "no" if not collapsed else "yes" if collapsed == len(rows) else f"{collapsed} of {len(rows)}"
        record["pretrain epochs"] = int(first.pretrain_epochs)
        record["pretrain s"] = f"{rows.pretrain_seconds.mean():.0f}"
        speed = rows.pretrain_images_per_second.mean()
        record["pretrain img/s"] = "" if pd.isna(speed) else f"{speed:.1f}"
        records.append(record)
    return pd.DataFrame(records).fillna("")  # a run resumed from older code has no effective rank


def ssl_figure(frame: pd.DataFrame, dataset: str, k: int, confidence: float) -> plt.Figure:
    """Bars of the mean over seeds, with the Student-t interval over seeds where there are several."""
    rows = frame[frame.dataset == dataset]
    long = rows.melt(id_vars="ssl_recipe", value_vars=[f"knn{k}_accuracy", "probe_accuracy", "finetune_accuracy"],
                     var_name="evaluation", value_name="test accuracy")
    long["evaluation"] = long.evaluation.map({f"knn{k}_accuracy": f"kNN@{k}", "probe_accuracy": "linear probe",
                                              "finetune_accuracy": "fine-tune"})
    fig, ax = plt.subplots(figsize=(8, 0.9 + 0.45 * rows.ssl_recipe.nunique()))
    sns.barplot(long, x="test accuracy", y="ssl_recipe", hue="evaluation", orient="h", ax=ax,
                errorbar=lambda values: interval(values, confidence)[3:])
    ax.set_ylabel("")
    ax.set_xlim(0, 1)
    ax.set_title(f"{dataset}: self-supervised backbones vs baselines")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # outside: fine-tune bars reach the right edge
    fig.tight_layout()
    return fig


def png_html(fig: plt.Figure, alt: str) -> str:
    """The figure embedded in the page itself."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return f'<img src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}" alt="{alt}">'


def ssl_markdown(params: Params) -> str:
    """The section for reports/README.md ('' when no SSL recipe has results)."""
    frame = ssl_results(params)
    if frame.empty:
        return ""
    from smallvision.ssl.config import load_ssl_params

    ks = load_ssl_params(params.folder / "params.yaml").evaluate.knn.k
    confidence = params.report.confidence
    lines = ["## Self-supervised pretraining", "", INTRO, ""]
    for dataset in frame.dataset.unique():
        published = published_line(frame, dataset, ssl_seed_figure(params, dataset), confidence)
        lines += [f"### {dataset}", "", *([published, ""] if published else []),
                  markdown_table(ssl_table(frame, dataset, ks, confidence)), ""]
    return "\n".join(lines)


def ssl_seed_figure(params: Params, dataset: str) -> dict | None:
    """{'value', 'source'}: the best fine-tune accuracy after SSL that a seed published on this
    dataset (or the one it stands in for), from catalogue.yaml's SSL recipe entries."""
    from smallvision.report.collect import seed_figure

    figure = seed_figure(params, dataset, ssl=True)
    return {"value": figure.accuracy, "source": figure.source} if figure else None
