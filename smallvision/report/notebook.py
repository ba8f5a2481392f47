"""What notebooks/report.ipynb calls: each method displays one section of the page."""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from IPython.display import HTML, Markdown, display

from smallvision.core.io import read_json
from smallvision.core.prepared import load_prepared
from smallvision.options.params import load_params
from smallvision.report.collect import collect, most_confused_pairs
from smallvision.report.escape import markdown_text
from smallvision.report.facts import card_html, dataset_facts
from smallvision.report.ssl import INTRO as SSL_INTRO
from smallvision.report.ssl import (
    png_html,
    published_line,
    ssl_figure,
    ssl_results,
    ssl_seed_figure,
    ssl_table,
)
from smallvision.report.stats import NOT_TEST_NOISE
from smallvision.report.text import best_line, dataset_line, leaderboard_table
from smallvision.ssl.config import load_ssl_params

CAPTIONS = {  # by figure file suffix
    "learning_curves": "Learning curves (dvclive logs): validation accuracy and training loss per epoch, "
                       "the mean over seeds with its interval as a band.",
    "confusion": "Confusion matrix of the chosen arm's best seed (rows: true class, share of the row).",
    "worst_classes": "The classes the chosen arm gets least right (per-class F1).",
    "mistakes": "The chosen arm's most confident mistakes on test images.",
    "data_efficiency": "Data efficiency: each approach's test accuracy against the training images per class it saw "
                       "(drawn afresh for each seed; validation and test fixed), with its interval band over seeds.",
    "gradcam": "Grad-CAM: where the best CNN-type recipe looked (red: the regions that drove its prediction).",
}


class ReportPage:
    def __init__(self, reports_dir: str):
        self.dir = Path(reports_dir)
        self.params = load_params()
        self.results = collect(self.params)
        saved = read_json(self.dir / "results.json")
        self.meta, self.figures, self.samples = saved["metadata"], saved["figures"], saved["samples"]

    def image(self, path: str) -> None:
        """Embed the PNG in the page itself, so index.html needs no other file."""
        data = base64.b64encode((self.dir / path).read_bytes()).decode()
        display(HTML(f'<img src="data:image/png;base64,{data}" alt="{Path(path).stem}">'))

    def title(self) -> None:
        display(Markdown(f"# {markdown_text(self.params.report.title)}\n\n"
                         f"{len(self.params.runs)} runs on {len(self.results.datasets)} dataset(s); "
                         f"generated {markdown_text(self.meta['date'])} on {markdown_text(self.meta['device'])}. "
                         "± is the half-width of the "
                         f"{self.results.confidence:.0%} Student-t interval over seeds. The arm *chosen* is the one with "
                         "the best mean validation accuracy, never the test split's; *vs chosen* is each arm's paired "
                         "difference to it on test (same seeds, same splits): *above*, *below* or *within noise*. "
                         f"{NOT_TEST_NOISE}"))

    def overview(self) -> None:
        display(Markdown("## Who wins, and at what cost"))
        for path in self.figures["overview"]:
            self.image(path)

    def datasets(self) -> None:
        for dataset in self.results.datasets:
            best = self.results.shown(dataset)
            display(Markdown(f"## {dataset}\n\n{dataset_line(self.results, dataset)}. {best_line(self.results, dataset)}"))
            display(Markdown("**Leaderboard** (test split; *published* is the seed experiment's own figure)"))
            table = leaderboard_table(self.results, dataset)
            display(HTML(table.to_html(index=False, classes="leaderboard", escape=True)))
            pairs = most_confused_pairs(self.results.confusion[(dataset, best)], self.params.report.most_confused_pairs)
            if len(pairs):
                display(Markdown(f"**Most confused pairs ({best})**"))
                display(HTML(pairs.to_html(index=False, escape=True)))
            for path in self.figures.get(dataset, []):
                caption = next((text for suffix, text in CAPTIONS.items() if path.endswith(f"_{suffix}.png")), "")
                display(Markdown(f"*{caption}*"))
                self.image(path)
            self.cards(dataset)

    def cards(self, dataset: str) -> None:
        """A fun-fact card beside each shown prediction, for Pokémon datasets."""
        sample = self.samples.get(dataset)
        if not sample or not sample["items"]:
            return
        test = load_prepared(dataset, splits=("test",))
        facts = dataset_facts(self.params.dataset(dataset), test.classes)
        if facts is None:
            return
        cards = [card_html(facts[item["predicted"]], png_uri(test["test"].images[item["index"]]), item["true"],
                           item["predicted"], item["probability"]) for item in sample["items"]]
        display(Markdown(f"**Predictions of {sample['recipe']} with Pokédex facts (PokeAPI)**"))
        display(HTML(f'<div class="cards">{"".join(cards)}</div>'))

    def ssl(self) -> None:
        """SSL methods vs ImageNet and random init; shown only when SSL results exist."""
        frame = ssl_results(self.params)
        if frame.empty:
            return
        ks, confidence = load_ssl_params().evaluate.knn.k, self.params.report.confidence
        display(Markdown(f"## Self-supervised pretraining\n\n{SSL_INTRO}"))
        for dataset in frame.dataset.unique():
            published = published_line(frame, dataset, ssl_seed_figure(self.params, dataset), confidence)
            display(Markdown(f"### {dataset}" + (f"\n\n{published}" if published else "")))
            table = ssl_table(frame, dataset, ks, confidence)
            display(HTML(table.to_html(index=False, classes="leaderboard", escape=True)))
            display(HTML(png_html(ssl_figure(frame, dataset, ks[0], confidence), f"{dataset}_ssl")))

    def metadata(self) -> None:
        meta = self.meta
        rows = {"date": meta["date"], "git commit": meta["git_commit"], "params.yaml md5": meta["params_md5"],
                "device": meta["device"], "CPU": meta["cpu"], "python": meta["python"], **meta["libraries"]}
        html = "".join(f"<tr><td>{escape(str(k))}</td><td>{escape(str(v))}</td></tr>" for k, v in rows.items())
        display(Markdown("## Run metadata"))
        display(HTML(f'<table class="meta">{html}</table>'))


def png_uri(image) -> str:
    """A (C, H, W) uint8 image as a data URI, so the page needs no other file."""
    import io

    from PIL import Image

    array = image.transpose(1, 2, 0)
    buffer = io.BytesIO()
    Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
