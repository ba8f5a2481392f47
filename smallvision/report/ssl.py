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

from smallvision.config import Params  # noqa: E402
from smallvision.io import read_json  # noqa: E402
from smallvision.paths import ssl_eval_dir  # noqa: E402
from smallvision.report.text import markdown_table  # noqa: E402

COLLAPSE_RATIO = 0.25  # final embedding spread below this share of the initial one: collapsed

INTRO = (
    "Backbones pretrained without labels on each dataset's training split, each evaluated on the test "
    "split by cosine kNN on frozen features, a linear probe and a full fine-tune (the same budgets for "
    "every row). Rows with method *none* are the baselines: the backbone as initialised, randomly or "
    "with ImageNet weights. *Spread* is the per-dimension standard deviation of normalised features "
    "x sqrt(dim) before and after pretraining (SimSiam's collapse check); a fall below "
    f"{COLLAPSE_RATIO:.0%} of the start is flagged as collapse. *vs baseline* compares a pretrained "
    "backbone with its starting point (the *none* recipe of the same backbone and weights; of several, the best "
    "on that measure): the "
    "difference ± the interval (at the report's confidence) of test-set sampling alone (one pretraining seed: seed-to-seed "
    "spread is not in it), *above* or *below* when the interval excludes 0, else *within noise*."
)


def ssl_results(params: Params, workspace: Path = Path(".")) -> pd.DataFrame:
    """One row per dataset x SSL recipe that has been evaluated (in `workspace`'s reports)."""
    rows = []
    for dataset in params.datasets:
        for name in params.ssl.methods:
            path = workspace / ssl_eval_dir(dataset, name) / "metrics.json"
            if path.exists():
                rows.append({"dataset": dataset, "ssl_recipe": name, **read_json(path)})
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["collapsed"] = frame.embedding_spread < COLLAPSE_RATIO * frame.embedding_spread_start
    return frame


def baseline_of(row: pd.Series, rows: pd.DataFrame, metric: str) -> pd.Series | None:
    """The `method: none` row a pretrained backbone started from: same backbone, same weights;
    of several (random init with different batch-norm statistics), the best on `metric`, so that
    a gain is never claimed over a weakened baseline."""
    if row.method == "none":
        return None
    same = rows[(rows.method == "none") & (rows.backbone == row.backbone) & (rows.weights == row.weights)]
    return same.sort_values([metric, "ssl_recipe"], ascending=[False, True]).iloc[0] if len(same) else None


def gain_text(row: pd.Series, rows: pd.DataFrame, metric: str, confidence: float) -> str:
    """'+0.031 ± 0.027 above effnet_random': the difference from the row's baseline (among
    `rows`) of two accuracies on the same test images, with the unpaired normal interval of
    test-set sampling (conservative: the two are positively correlated)."""
    base = baseline_of(row, rows, metric)
    if base is None:
        return ""
    p, q = row[metric], base[metric]
    gain, half = p - q, math.hypot(sampling_half_width(p, row.test_images, confidence),
                                   sampling_half_width(q, row.test_images, confidence))
    verdict = "above" if gain - half > 0 else "below" if gain + half < 0 else "within noise of"
    return f"{gain:+.3f} ± {half:.3f} {verdict} {base.ssl_recipe}"


def sampling_half_width(accuracy: float, images: int, confidence: float) -> float:
    """Half-width of the normal interval of an accuracy measured on `images` test images."""
    return norm.ppf(0.5 + confidence / 2) * math.sqrt(accuracy * (1 - accuracy) / images)


def published_line(frame: pd.DataFrame, dataset: str, published: dict | None, confidence: float) -> str:
    """The seed's published fine-tune accuracy after pretraining without labels (`published`:
    value and source), beside our best pretrained backbone's fine-tune with its test-set
    interval; '' when the seed published none for this dataset."""
    best = best_pretrained(frame, dataset)
    if not published or best is None:
        return ""
    half = sampling_half_width(best.finetune_accuracy, best.test_images, confidence)
    return (f"Published (seed): fine-tune accuracy {published['value']:.3f} after pretraining without labels "
            f"({published['source']}). Ours: `{best.ssl_recipe}` {best.finetune_accuracy:.3f} ± {half:.3f}.")


def best_pretrained(frame: pd.DataFrame, dataset: str) -> pd.Series | None:
    """The row of the backbone pretrained without labels (not a `none` baseline) whose fine-tune
    scored best on this dataset; None when there is none."""
    rows = frame[(frame.dataset == dataset) & (frame.method != "none")]
    return rows.sort_values(["finetune_accuracy", "ssl_recipe"], ascending=[False, True]).iloc[0] if len(rows) else None


def ssl_table(frame: pd.DataFrame, dataset: str, ks: list[int], confidence: float) -> pd.DataFrame:
    rows = frame[frame.dataset == dataset].sort_values(f"knn{ks[0]}_accuracy", ascending=False)
    records = [row for _, row in rows.iterrows()]
    table = pd.DataFrame({"SSL recipe": rows.ssl_recipe, "method": rows.method,
                          "backbone": rows.backbone + " (" + rows.weights + ")"})
    for k in ks:
        table[f"kNN@{k}"] = rows[f"knn{k}_accuracy"].map("{:.4f}".format)
    table[f"kNN@{ks[0]} vs baseline"] = [gain_text(row, rows, f"knn{ks[0]}_accuracy", confidence) for row in records]
    table["linear probe"] = rows.probe_accuracy.map("{:.4f}".format)
    table["fine-tune"] = rows.finetune_accuracy.map("{:.4f}".format)
    table["fine-tune vs baseline"] = [gain_text(row, rows, "finetune_accuracy", confidence) for row in records]
    table["spread start -> end"] = [f"{a:.3f} -> {b:.3f}" for a, b in zip(rows.embedding_spread_start,
                                                                           rows.embedding_spread)]
    table["collapsed"] = rows.collapsed.map({True: "yes", False: "no"})
    table["pretrain epochs"] = rows.pretrain_epochs
    table["pretrain s"] = rows.pretrain_seconds.map("{:.0f}".format)
    table["pretrain img/s"] = rows.pretrain_images_per_second.map(lambda v: "" if pd.isna(v) else f"{v:.1f}")
    return table.reset_index(drop=True)


def ssl_figure(frame: pd.DataFrame, dataset: str, k: int) -> plt.Figure:
    rows = frame[frame.dataset == dataset]
    long = rows.melt(id_vars="ssl_recipe", value_vars=[f"knn{k}_accuracy", "probe_accuracy", "finetune_accuracy"],
                     var_name="evaluation", value_name="test accuracy")
    long["evaluation"] = long.evaluation.map({f"knn{k}_accuracy": f"kNN@{k}", "probe_accuracy": "linear probe",
                                              "finetune_accuracy": "fine-tune"})
    fig, ax = plt.subplots(figsize=(8, 0.9 + 0.45 * len(rows)))
    sns.barplot(long, x="test accuracy", y="ssl_recipe", hue="evaluation", orient="h", ax=ax)
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
