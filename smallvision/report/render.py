"""Build reports/: metrics.json, figures/, README.md, report.ipynb (executed) and index.html."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from smallvision.core.io import write_json
from smallvision.core.paths import REPORT, model_dir
from smallvision.core.prepared import load_prepared
from smallvision.core.progress import log
from smallvision.options.params import Params
from smallvision.report import figures, stats
from smallvision.report.collect import Results, collect, headline_tree, metrics_tree
from smallvision.report.metadata import run_metadata
from smallvision.report.ssl import ssl_markdown
from smallvision.report.text import readme

NOTEBOOK = Path("notebooks/report.ipynb")
OUTPUTS = ["metrics.json", "headline.json", "figures", "README.md", "report.ipynb", "index.html", "results.json"]


def build_report(params: Params, out: Path = REPORT) -> None:
    """Everything is built in a temporary folder and moved into place at the end, so a
    failure leaves no partial report behind."""
    start = time.perf_counter()
    results = collect(params)
    meta = run_metadata()
    with tempfile.TemporaryDirectory(dir=out, prefix=".report.") as tmp:
        build = Path(tmp)
        write_json(build / "metrics.json", metrics_tree(results))
        write_json(build / "headline.json", headline_tree(results))
        figure_files, samples = save_figures(results, params, build / "figures")
        write_json(build / "results.json", {"metadata": meta, "figures": figure_files, "samples": samples})
        (build / "README.md").write_text(readme(results, params, meta, figure_files) + ssl_markdown(params))
        execute_notebook(build)
        for name in OUTPUTS:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            shutil.move(str(build / name), target)
    log(f"report written to {out}/index.html and {out}/README.md in {time.perf_counter() - start:.1f}s")


def save_figures(results: Results, params: Params, folder: Path) -> tuple[dict, dict]:
    """PNG files by section ('overview' or a dataset name), relative to reports/, and per
    dataset the fixed sample of test images shown with Grad-CAM and fact cards."""
    folder.mkdir(parents=True)
    files: dict[str, list[str]] = {"overview": []}
    samples: dict[str, dict] = {}

    def save(fig, name: str, section: str) -> None:
        if fig is None:
            return
        fig.savefig(folder / name, dpi=110, bbox_inches="tight")
        plt.close(fig)
        files.setdefault(section, []).append(f"figures/{name}")

    save(figures.accuracy_bars(results.runs, results.leaderboard, results.confidence), "accuracy.png", "overview")
    save(figures.accuracy_vs_time(results.leaderboard), "accuracy_vs_time.png", "overview")
    for dataset in results.datasets:
        best = results.shown(dataset)
        key = (dataset, best)
        band = stats.curve_band(results.history[results.history.dataset == dataset], results.confidence)
        save(figures.learning_curves_band(band, dataset, confidence=results.confidence),
             f"{dataset}_learning_curves.png", dataset)
        if len(results.confusion[key]["classes"]) <= params.report.max_confusion_classes:
            save(figures.confusion_heatmap(results.confusion[key], f"{dataset}: confusion of {best}"),
                 f"{dataset}_confusion.png", dataset)
        save(figures.worst_classes(results.per_class[key], 10, f"{dataset}: lowest per-class F1 ({best})"),
             f"{dataset}_worst_classes.png", dataset)
        test = load_prepared(dataset, splits=("test",))
        save(figures.misclassified_gallery(test["test"].images, results.predictions[key], 12,
                                           f"{dataset}: most confident mistakes of {best}"),
             f"{dataset}_mistakes.png", dataset)
        save(figures.data_efficiency(curve_points(results, params, dataset), dataset), f"{dataset}_data_efficiency.png",
             dataset)
        samples[dataset] = shown_sample(results, params, dataset, len(test["test"]))
        save(gradcam_figure(params, dataset, test, samples[dataset]), f"{dataset}_gradcam.png", dataset)
    return files, samples


def curve_points(results: Results, params: Params, dataset: str) -> pd.DataFrame:
    """The dataset's data-efficiency points: each run with `train_per_class` (arm <curve>_k<k>) and,
    at its whole split's mean images per class, the curve's own arm."""
    per_class = {run.arm: run.train_per_class for run in params.runs.values() if run.dataset == dataset}
    curves = {arm.rsplit("_k", 1)[0] for arm, k in per_class.items() if k}
    if not curves:
        return pd.DataFrame()
    rows = results.leaderboard[results.leaderboard.dataset == dataset]
    train = load_prepared(dataset, splits=("train",))
    whole = len(train["train"]) / train.num_classes
    points = []
    for row in rows.itertuples():
        k = per_class.get(row.recipe)
        curve = row.recipe.rsplit("_k", 1)[0] if k else row.recipe
        if curve in curves:
            points.append({"curve": curve, "per_class": k or whole, "accuracy": row.accuracy,
                           "accuracy_ci_low": row.accuracy_ci_low, "accuracy_ci_high": row.accuracy_ci_high})
    return pd.DataFrame(points)


def shown_sample(results: Results, params: Params, dataset: str, test_size: int) -> dict:
    """Evenly spaced test images, with the predictions of the arm best on validation that has a
    spatial feature map (the Grad-CAM one), or else of the arm the report shows."""
    from smallvision.report.explain import spatial_recipes

    spatial = spatial_recipes(results, params, dataset)
    recipe = spatial[0] if spatial else results.shown(dataset)
    count = min(params.report.gradcam_images, test_size)
    rows = results.predictions[(dataset, recipe)]
    indices = np.linspace(0, test_size - 1, num=count).astype(int).tolist() if count else []
    items = [{"index": i, "true": str(rows.actual[i]), "predicted": str(rows.predicted[i]),
              "probability": float(rows.confidence[i])} for i in indices]
    return {"recipe": recipe, "seed": results.best_seed[(dataset, recipe)], "gradcam": bool(spatial), "items": items}


def gradcam_figure(params: Params, dataset: str, test, sample: dict):
    """Grad-CAM overlays of the sample for its recipe (one with a spatial feature map)."""
    from smallvision.inference import load_predictor
    from smallvision.report.explain import gradcam_maps, overlays

    if not sample["gradcam"] or not sample["items"] or test.multilabel:
        return None
    name = sample["recipe"]
    seed = sample["seed"]
    predictor = load_predictor(params.arm_recipe(dataset, name, seed), load_prepared(dataset), model_dir(dataset, name, seed))
    index = [item["index"] for item in sample["items"]]
    images = test["test"].images[index]
    maps, predicted = gradcam_maps(predictor.model.cpu(), images)
    truth = [item["true"] for item in sample["items"]]
    return figures.gradcam_grid(images, overlays(images, maps), truth, [test.classes[i] for i in predicted],
                                f"{dataset}: Grad-CAM of {name} (where the network looked)")


def execute_notebook(build: Path) -> None:
    """Run the notebook template with papermill, then export it as one self-contained page."""
    import papermill

    papermill.execute_notebook(str(NOTEBOOK), str(build / "report.ipynb"),
                               parameters={"reports_dir": str(build)}, progress_bar=False,
                               kernel_name="python3", cwd=str(Path.cwd()))
    (build / "index.html").write_text(export_html(build / "report.ipynb"))


def export_html(notebook: Path) -> str:
    """The page people read: outputs only, without the kernel's warnings (they stay in
    reports/report.ipynb for whoever debugs the report)."""
    import nbformat
    from nbconvert import HTMLExporter

    executed = nbformat.read(notebook, as_version=4)
    for cell in executed.cells:
        cell.outputs = [out for out in cell.get("outputs", [])
                        if not (out.get("output_type") == "stream" and out.get("name") == "stderr")]
    exporter = HTMLExporter(template_name="basic", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True, anchor_link_text="")
    body, _ = exporter.from_notebook_node(executed)
    return PAGE.replace("{body}", body)


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>smallvision report</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1150px; margin: 2em auto;
       padding: 0 1.2em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #446; padding-bottom: .2em; }
h2 { margin-top: 1.8em; border-bottom: 1px solid #ccd; }
table { border-collapse: collapse; margin: .8em 0; font-size: 0.92em; }
th, td { border: 1px solid #d4d4dc; padding: .3em .6em; text-align: right; }
th { background: #eef0f6; } td:first-child, th:first-child { text-align: left; }
tr.best td { font-weight: 600; background: #f3fbf3; }
img { max-width: 100%; height: auto; }
.meta td { text-align: left; }
.cards { display: flex; flex-wrap: wrap; gap: .6em; }
.card { display: flex; gap: .6em; width: 340px; border: 1px solid #d4d4dc; border-radius: 6px; padding: .5em;
        font-size: 0.85em; }
.card img { width: 72px; height: 72px; image-rendering: pixelated; }
.card.wrong { border-color: #d9534f; } .card .genus { color: #555; font-style: italic; }
</style></head><body>
{body}
</body></html>
"""
