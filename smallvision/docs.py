"""Generated documentation: the recipe catalogue, each study's results, the README's headline table,
docs/ssl.md's table of verdicts.

  python -m smallvision.docs                    # docs/recipes.md, the README's headline block and
                                                # docs/ssl.md's verdicts block
  python -m smallvision.docs results STUDY      # docs/results/STUDY.md and .json from a finished
                                                # run, then the headline block again
  python -m smallvision.docs results STUDY --reports DIR --params FILE   # another workspace's run
  python -m smallvision.docs pool NAME --from STUDY STUDY ...   # docs/results/NAME.md and .json: the
                                                # seeds of several SSL pages as one (smallvision/pool.py)
  python -m smallvision.docs compare STUDY:RECIPE STUDY:RECIPE   # one committed page's recipe minus
                                                # another's, paired where both keep each seed's figures

Results come from the run's own files (reports/metrics.json, reports/results.json's metadata,
params.yaml's runs), never from typed figures, and a page is written only when its command
(`profile STUDY --seeds ...`) rebuilds the run's params.yaml. docs/results/<study>.json holds
what the README's headline table needs; tests/test_docs.py checks that the table, the catalogue
and the recipe files agree."""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import subprocess
import textwrap
from pathlib import Path
from typing import NamedTuple

from smallvision.core.errors import UserError, exits_cleanly
from smallvision.options.schema import read_yaml_file

DOCS = Path("docs")
RESULTS = DOCS / "results"
README = Path("README.md")
SSL_DOC = DOCS / "ssl.md"
STUDIES = Path("studies")
REGENERATE = "python -m smallvision.docs"
COMPARED = ("accuracy", "macro_f1")  # what a results page compares with its best recipe, seed by seed
LABELS = {"accuracy": "accuracy", "macro_f1": "macro F1"}
# The evaluation's figures of the same weights with one test-time setting undone (smallvision.evaluate.test_time_shares),
# and what a page says of each setting's share: each seed's figure minus the undone one.
SHARES = {
    "{}_without_tta": "Test-time augmentation's share: each seed's test figure minus the same weights' figure on the "
                      "plain test images",
    "{}_at_train_size": "The test size's share (evaluate.test_size_scale): each seed's test figure minus the same "
                        "weights' figure at the side they trained at",
}


def reproduce_command(study: str, seeds: list[int], studies: Path = STUDIES) -> str:
    """The commands that rerun a study with these seeds, its folders named by environment
    variables ($VAR without a fallback in studies/<study>.yaml) left as placeholders."""
    path = studies / f"{study}.yaml"
    text = "\n".join(line.split("#")[0] for line in path.read_text().splitlines()) if path.exists() else ""
    folders = "".join(f"{name}=/path/to/{name} " for name in dict.fromkeys(re.findall(r"\$(\w+)(?!\w|\|)", text)))
    return (f"{folders}python -m smallvision.profile {study} --seeds {' '.join(map(str, seeds))} && dvc repro && "
            f"{REGENERATE} results {study}")


# ---- docs/recipes.md ---------------------------------------------------------------------------

def setting(recipe: dict) -> str:
    """One line of what a recipe of recipes.yaml or ssl.yaml sets (its overrides of the defaults,
    not the merged recipe)."""
    method = recipe.get("method", "torch")
    parts = ["no pretraining (a baseline)" if method == "none" else method]
    model = recipe.get("model") or {}
    backbone = model.get("backbone") or recipe.get("backbone") or {}  # an SSL recipe names it at the top
    if backbone:
        weights = backbone.get("weights")
        parts.append(backbone["name"] + (f" ({weights})" if weights else ""))
    if model.get("freeze"):
        parts.append(f"freeze {model['freeze']}")
    if "C" in recipe:
        parts.append(f"C {recipe['C']}")
    for key, label in (("input_size", "{} px"), ("epochs", "{} epochs"), ("batch_size", "batch {}")):
        if key in recipe:
            parts.append(label.format(recipe[key]))
    optimizer = recipe.get("optimizer") or {}
    if optimizer:
        lr = f"lr {optimizer['lr']}" if "lr" in optimizer else ""
        parts.append(" ".join(v for v in (optimizer.get("name", ""), lr) if v))
    if "prediction_lr_scale" in recipe:
        parts.append(f"predictor lr x{recipe['prediction_lr_scale']}")
    if recipe.get("koleo_weight"):
        parts.append(f"KoLeo x{recipe['koleo_weight']}")
    loss = (recipe.get("loss") or {}).get("name")
    if loss:
        parts.append(f"loss {loss}")
    if "ks" in recipe:
        parts.append("k " + "/".join(map(str, recipe["ks"])))
    if "bn_stats" in recipe:
        parts.append(f"batch-norm statistics {recipe['bn_stats']}")
    return ", ".join(parts)


def published(reference: dict | None) -> tuple[str, str]:
    """(the seed experiment, its published figures by dataset) of a catalogue entry's reference."""
    if not reference:
        return "", ""
    results = reference.get("results") or {}
    figures = "; ".join(f"{dataset}: " + ", ".join(f"{metric.replace('_', ' ')} {value:g}" for metric, value in m.items())
                        for dataset, m in results.items())
    return reference.get("source", ""), figures


def cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def recipes_markdown(recipes: dict, ssl_recipes: dict, catalogue: dict) -> str:
    lines = ["# Recipes", "",
             f"Generated by `{REGENERATE}` from recipes.yaml and ssl.yaml (settings) and catalogue.yaml (notes,",
             "published figures); edit those files, not this one. A recipe overrides params.yaml's `train` (torch,",
             "knn) or `sklearn` (logreg) defaults key by key; \"setting\" lists the main keys it sets. \"(ours)\" in",
             "the notes marks what its seed did not publish.", "",
             *recipe_table(recipes, catalogue), "",
             "## Self-supervised pretraining (ssl.yaml)", "",
             "Each overrides ssl.yaml's `pretrain` defaults; `params.yaml: ssl.methods` (or a study) says which run.",
             "Every one is judged by the same evaluation (kNN, linear probe, fine-tune; docs/ssl.md), and the",
             "baselines (no pretraining) are what a pretrained backbone is compared with.", "",
             *recipe_table(ssl_recipes, catalogue)]
    return "\n".join(lines) + "\n"


def recipe_table(recipes: dict, catalogue: dict) -> list[str]:
    lines = ["| recipe | seed experiment | setting | published (dataset: figure) | notes |", "|---|---|---|---|---|"]
    for name, recipe in recipes.items():
        entry = catalogue.get(name) or {}
        seed, figures = published(entry.get("reference"))
        lines.append(f"| `{name}` | {cell(seed)} | {cell(setting(recipe or {}))} | {cell(figures)} | "
                     f"{cell(entry.get('notes', ''))} |")
    return lines


def render_recipes(folder: Path = Path(".")) -> str:
    from smallvision.options.params import CATALOGUE_FILE, RECIPES_FILE, SSL_FILE

    return recipes_markdown(read_yaml_file(folder / RECIPES_FILE), read_yaml_file(folder / SSL_FILE)["recipes"],
                            read_yaml_file(folder / CATALOGUE_FILE))


# ---- docs/results/<study>.{md,json} -------------------------------------------------------------

def study_results(study: str, reports: Path, params_file: Path) -> dict:
    """The sidecar: the run's metadata, and per dataset x recipe its seeds, the summary over them
    (means and intervals from reports/metrics.json) and the seed's published figure."""
    from smallvision.core.io import read_json
    from smallvision.options.params import load_params
    from smallvision.report.collect import reference_columns, seed_figure

    for name in ("metrics.json", "results.json"):
        if not (reports / name).exists():
            raise UserError(f"{reports / name} not found: run `dvc repro` first")
    params = load_params(params_file)
    metrics, meta = read_json(reports / "metrics.json"), read_json(reports / "results.json")["metadata"]
    if meta.get("params_md5") != hashlib.md5(Path(params_file).read_bytes()).hexdigest():
        raise UserError(f"{reports} was made from another {params_file} (params_md5 differs): run `dvc repro` first")
    datasets: dict = {}
    for dataset in params.run_datasets:
        seed_dataset = params.dataset(dataset).seed_dataset
        rows = {}
        for recipe in params.recipes_on(dataset):
            if recipe not in metrics.get(dataset, {}):
                raise UserError(f"{reports / 'metrics.json'} has no {dataset}.{recipe}: the report is older than "
                                f"{params_file}; run `dvc repro`")
            ref = reference_columns(params.about(recipe), dataset, seed_dataset)
            seeds = params.seeds_of(dataset, recipe)
            rows[recipe] = {"seeds": seeds, **metrics[dataset][recipe],
                            "per_seed": seed_figures(reports.parent, dataset, recipe, seeds),
                            "published": {"metric": ref["reference_metric"], "value": ref["reference_value"],
                                          "source": ref["reference"]} if ref["reference_metric"] else None}
        figure = seed_figure(params, dataset)
        datasets[dataset] = {"seed_dataset": seed_dataset, "recipes": rows,
                             "seed_figure": {"metric": "accuracy", "value": figure.accuracy, "source": figure.source,
                                             "minutes": figure.minutes} if figure else None}
    seeds = sorted({run.seed for run in params.runs.values()})
    check_params_reproduce(study, seeds, params_file)
    data = {"study": study, "command": reproduce_command(study, seeds), "params_as_command": True,
            "confidence": params.report.confidence, "metadata": meta, "datasets": datasets}
    if params.ssl.methods:
        data["ssl"] = pretrained_results(params, params_file, reports)
    return data


def seed_figures(workspace: Path, dataset: str, recipe: str, seeds: list[int]) -> dict[str, dict[str, float]]:
    """metric -> seed -> that seed's test figure, for the page's compared metrics: what lets the
    page pair two recipes' runs of one seed (the same split) rather than compare their summaries."""
    from smallvision.core.io import read_json
    from smallvision.core.paths import eval_dir

    kept = COMPARED + tuple(undone.format(metric) for undone in SHARES for metric in COMPARED)
    figures: dict[str, dict[str, float]] = {metric: {} for metric in kept}
    for seed in seeds:
        path = workspace / eval_dir(dataset, recipe, seed) / "metrics.json"
        if not path.exists():
            raise UserError(f"{path} not found: run `dvc repro` to evaluate every run first")
        run = read_json(path)
        for metric in kept:
            if metric in run:
                figures[metric][str(seed)] = run[metric]  # JSON's keys are text
    return {metric: by_seed for metric, by_seed in figures.items() if by_seed}


def check_params_reproduce(study: str, seeds: list[int], params_file: Path) -> None:
    """The page's command must rebuild the run's params.yaml: the study with these seeds (and this
    machine's folder variables) applied to the committed params.yaml gives it byte for byte. Else
    the page would claim a command that does not reproduce it, so it is refused."""
    from smallvision.profile import read_study, rewritten

    try:
        committed = subprocess.run(["git", "show", "HEAD:params.yaml"], capture_output=True, text=True,
                                   check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        raise UserError("docs results checks the run's params.yaml against the committed one: "
                        "run it in a git checkout of smallvision") from None
    expected = rewritten(read_study(study, seeds), committed, Path("recipes.yaml")).splitlines()
    actual = Path(params_file).read_text().splitlines()
    if actual != expected:
        line = next((n for n, (a, e) in enumerate(zip(actual, expected)) if a != e), min(len(actual), len(expected)))
        found, wanted = (lines[line] if line < len(lines) else "(end of file)" for lines in (actual, expected))
        unset = unset_folder_variables(study)
        raise UserError(f"{params_file} is not what `python -m smallvision.profile {study} --seeds "
                        f"{' '.join(map(str, seeds))}` writes from the committed params.yaml (line {line + 1}: "
                        f"{found!r}, expected {wanted!r}), so the page's command would not reproduce the run. Set the "
                        "study's folder variables as for the run" + (f" ({'; '.join(unset)})" if unset else "")
                        + ", or apply the study again and rerun `dvc repro`")


def unset_folder_variables(study: str) -> list[str]:
    """The study's `$VAR|fallback` folders whose VAR this shell lacks, e.g. "$CARS196 unset here, so
    data/raw/cars196": the likeliest reason that the run's params.yaml (written where VAR was set)
    differs from the one rewritten here."""
    from smallvision.profile import STUDIES, unset_fallbacks

    written = read_yaml_file(STUDIES / f"{study}.yaml", "study keys")
    return [f"${name} unset here, so {fallback}" for name, fallback in dict.fromkeys(unset_fallbacks(written))]


def pretrained_results(params, params_file: Path, reports: Path) -> dict:
    """The SSL evaluations of the run: every SSL recipe's metrics on every dataset."""
    from smallvision.report.ssl import ssl_results, ssl_seed_figure
    from smallvision.ssl.config import load_ssl_params

    frame = ssl_results(params, workspace=reports.parent)
    missing = {(d, m, s) for d in params.datasets for m in params.ssl.methods for s in params.ssl.seeds} - \
        set(zip(frame.get("dataset", []), frame.get("ssl_recipe", []), frame.get("seed", [])))
    if missing:
        raise UserError(f"{reports / 'eval'} has no SSL evaluation of "
                        f"{', '.join(f'{d}/{m} seed {s}' for d, m, s in sorted(missing))}: run `dvc repro`")
    return {"knn_k": load_ssl_params(params_file).evaluate.knn.k, "rows": json.loads(frame.to_json(orient="records")),
            "seed_figures": {dataset: figure for dataset in params.datasets
                             if (figure := ssl_seed_figure(params, dataset)) is not None}}


def figure(row: dict, metric: str) -> str:
    from smallvision.report.stats import describe

    nan = float("nan")
    return describe(row.get(metric, nan), row.get(f"{metric}_ci_low", nan), row.get(f"{metric}_ci_high", nan),
                    int(row.get(f"{metric}_n", row.get("n_seeds", 0)) if metric in row else 0))


def paired_seeds(row: dict, best: dict, metric: str) -> list[str]:
    """The seeds whose figure on `metric` the page keeps for both recipes, where there are two or
    more to pair; else none (as on pages from before 2026-12-05, which kept summaries only)."""
    theirs = best.get("per_seed", {}).get(metric, {})
    seeds = [seed for seed in row.get("per_seed", {}).get(metric, {}) if seed in theirs]
    return seeds if len(seeds) >= 2 else []


def versus_best(row: dict, best: dict, metric: str, confidence: float) -> str:
    """'-0.012 ± 0.030, within noise': row minus the best recipe on `metric`; the Student-t
    interval of the per-seed differences where the page keeps both recipes' figures on two seeds
    or more (the seeds share the split), else Welch's interval from the two summaries."""
    from smallvision.report.stats import interval, welch_difference

    if row is best:
        return "best"
    if metric not in row or metric not in best:
        return ""
    nan = float("nan")
    seeds = paired_seeds(row, best, metric)
    if seeds:
        ours, theirs = row["per_seed"][metric], best["per_seed"][metric]
        difference, _, _, low, high = interval([ours[seed] - theirs[seed] for seed in seeds], confidence)
    else:
        difference, low, high = welch_difference(
            *((summary[metric], summary.get(f"{metric}_std", nan),
               summary.get(f"{metric}_n", summary.get("n_seeds", 0))) for summary in (row, best)),
            confidence=confidence)
    return difference_text(difference, low, high, paired=bool(seeds))


def difference_text(difference: float, low: float, high: float, paired: bool) -> str:
    """'+0.012 ± 0.010, above': a difference, its interval's half-width and whether it holds 0."""
    from smallvision.report.stats import IDENTICAL

    if math.isnan(low):
        return f"{difference:+.3f} (no interval)"
    if high == low:  # no spread: each recipe gave one figure on every seed, or they differ alike on each
        return f"{difference:+.3f} ({'the same difference on every seed' if paired else IDENTICAL})"
    verdict = "above" if low > 0 else "below" if high < 0 else "within noise"
    return f"{difference:+.3f} ± {(high - low) / 2:.3f}, {verdict}"


def share_lines(rows: list[tuple[str, dict]], confidence: float, undone: str) -> list[str]:
    """For each recipe whose evaluation also undid a test-time setting (`undone`, a key of SHARES),
    that setting's share: each seed's figure minus the same weights' figure without it, paired
    over the seeds."""
    from smallvision.report.stats import interval

    lines = []
    for recipe, row in rows:
        per_seed = row.get("per_seed", {})
        shares = []
        for metric in COMPARED:
            with_it, without = per_seed.get(metric, {}), per_seed.get(undone.format(metric), {})
            seeds = [seed for seed in without if seed in with_it]
            if seeds:
                difference, _, _, low, high = interval([with_it[seed] - without[seed] for seed in seeds], confidence)
                shares.append(f"{LABELS[metric]} {difference_text(difference, low, high, paired=True)} "
                              f"(seeds {', '.join(seeds)})")
        sizes = f" (trained at {row['train_size']:.0f} px, tested at {row['test_size']:.0f})" if "test_size" in row else ""
        if shares:
            lines.append(f"- `{recipe}`{sizes}: {'; '.join(shares)}")
    if not lines:
        return []
    return [f"{SHARES[undone]}, {confidence:.0%} Student-t interval over the seeds.", "", *lines, ""]


def page_row(spec: str, folder: Path = RESULTS) -> tuple[dict, float]:
    """The row of 'STUDY:RECIPE' (or 'STUDY:DATASET:RECIPE' where the page ran it on several
    datasets) on its committed results page, and the page's confidence level."""
    study, *dataset, recipe = spec.split(":")
    path = folder / f"{study}.json"
    if not path.exists() or len(dataset) > 1:
        raise UserError(f"{spec}: expected STUDY:RECIPE or STUDY:DATASET:RECIPE of a committed page "
                        f"(docs/results/STUDY.json; there are {', '.join(committed_studies(folder))})")
    data = json.loads(path.read_text())
    found = {name: entry["recipes"][recipe] for name, entry in data["datasets"].items()
             if recipe in entry["recipes"] and name in (dataset or [name])}
    if not found:
        raise UserError(f"{spec}: {path} has no recipe {recipe}" + (f" on {dataset[0]}" if dataset else ""))
    if len(found) > 1:
        raise UserError(f"{spec}: {path} ran {recipe} on {', '.join(found)}: name one, as STUDY:DATASET:RECIPE")
    return next(iter(found.values())), data["confidence"]


def compare_text(first: str, second: str, folder: Path = RESULTS) -> str:
    """First minus second on the pages' compared metrics, paired over the seeds both pages keep
    figures of (two or more), else Welch's from the two pages' summaries; at the first page's
    confidence level."""
    (ours, confidence), (theirs, _) = page_row(first, folder), page_row(second, folder)
    lines = [f"{first} minus {second} ({confidence:.0%} intervals):"]
    for metric in COMPARED:
        seeds = paired_seeds(ours, theirs, metric)
        how = f"paired over seeds {', '.join(seeds)}" if seeds else "Welch, from the two summaries"
        lines.append(f"  {metric}: {figure(ours, metric)} vs {figure(theirs, metric)}: "
                     f"{versus_best(ours, theirs, metric, confidence)} ({how})")
    return "\n".join(lines)


def device_text(meta: dict) -> str:
    """The device a page's runs used; with the CPU's identity where the run recorded it (pages
    from before 2026-12-04 did not)."""
    return meta["device"] + (f" ({meta['cpu']})" if meta.get("cpu") else "")


def comparison(data: dict) -> str:
    """How the page's *vs best* intervals are drawn: paired where it keeps each seed's figures."""
    if all(row.get("per_seed") for entry in data["datasets"].values() for row in entry["recipes"].values()):
        return ("Student-t interval of the per-seed differences over the seeds both ran (paired: a seed's runs share "
                "the split), or Welch's from the two summaries where they share fewer than two seeds")
    return ("Welch interval from the two recipes' means and spreads (unpaired: this page keeps each recipe's "
            "summary, not its seeds' runs)")


def results_markdown(data: dict) -> str:
    from smallvision.report.stats import NOT_TEST_NOISE
    from smallvision.report.text import reach_header, reach_text

    if data.get("pooled_from"):
        from smallvision.pool import pooled_header

        return "\n".join(pooled_header(data) + ssl_section(data))
    nan = float("nan")
    meta = data["metadata"]
    libraries = ", ".join(f"{k} {v}" for k, v in meta["libraries"].items())
    lines = [f"# Results: study `{data['study']}`", "",
             f"Generated by `{REGENERATE} results {data['study']}` from the run's reports/metrics.json and "
             "reports/results.json; not edited by hand. To reproduce:", "",
             "```bash", data["command"], "```", "",
             f"- date: {meta['date']}", f"- commit: {meta['git_commit']}",
             *([f"- uncommitted at the run: {', '.join(meta['uncommitted'])}"] if meta.get("uncommitted") else []),
             *([f"- params.yaml: as the command above writes it (md5 {meta['params_md5']})"]
               if data.get("params_as_command") else []),
             f"- device: {device_text(meta)}",
             f"- python {meta['python']}; {libraries}", "",
             f"± is the half-width of the {data['confidence']:.0%} Student-t interval over seeds (no interval from one seed). "
             f"{NOT_TEST_NOISE} *vs best*: the difference to the table's first recipe (best mean accuracy), with its "
             f"{data['confidence']:.0%} {comparison(data)}; *above* or *below* when the interval excludes 0, else "
             "*within noise*.",
             ""]
    for dataset, entry in data["datasets"].items():
        rows = sorted(entry["recipes"].items(), key=lambda item: (-item[1]["accuracy"], item[0]))
        stands_for = f" (stands in for {entry['seed_dataset']})" if entry["seed_dataset"] else ""
        seed = entry.get("seed_figure")
        reach = f" {reach_header(seed['value'], seed.get('minutes') or nan)} |" if seed else ""
        lines += [f"## {dataset}{stands_for}", "",
                  f"| recipe | seeds | test accuracy | accuracy vs best | macro F1 | F1 vs best | train s | published (seed) |{reach}",
                  "|---|---|---|---:|---|---:|---:|---|" + ("---|" if seed else "")]
        best = rows[0][1]
        for recipe, row in rows:
            ref = row["published"]
            ref_text = f"{ref['metric'].replace('_', ' ')} {ref['value']:.3f}" if ref else ""
            if ref and ref["metric"] not in ("accuracy", "macro_f1") and ref["metric"] in row:  # not in a column
                ref_text += f"; ours {figure(row, ref['metric'])}"
            reached = f" {reach_text(row.get('reach_n', nan), row.get('reach_seconds', nan), row['n_seeds'])} |" if seed else ""
            lines.append(f"| `{recipe}` | {', '.join(map(str, row['seeds']))} | {figure(row, 'accuracy')} | "
                         f"{versus_best(row, best, 'accuracy', data['confidence'])} | {figure(row, 'macro_f1')} | "
                         f"{versus_best(row, best, 'macro_f1', data['confidence'])} | "
                         f"{row.get('train_seconds', float('nan')):.1f} | {ref_text} |{reached}")
        lines.append("")
        for undone in SHARES:
            lines += share_lines(rows, data["confidence"], undone)
    return "\n".join(lines + ssl_section(data))


def ssl_section(data: dict) -> list[str]:
    """The self-supervised evaluations, drawn as the report draws them ([] without SSL)."""
    if not data.get("ssl"):
        return []
    import pandas as pd

    from smallvision.report.ssl import INTRO, published_line, ssl_table
    from smallvision.report.text import markdown_table

    frame, ks = pd.DataFrame(data["ssl"]["rows"]), data["ssl"]["knn_k"]
    lines = []
    for dataset in frame.dataset.unique():
        published = published_line(frame, dataset, data["ssl"].get("seed_figures", {}).get(dataset), data["confidence"])
        lines += [f"## {dataset}: self-supervised pretraining", "", INTRO, "", *([published, ""] if published else []),
                  markdown_table(ssl_table(frame, dataset, ks, data["confidence"])), ""]
    return lines


def write_results(data: dict, folder: Path = RESULTS) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    md, sidecar = folder / f"{data['study']}.md", folder / f"{data['study']}.json"
    md.write_text(results_markdown(data))
    sidecar.write_text(json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False, default=str) + "\n")
    return md, sidecar


# ---- the README's headline block ----------------------------------------------------------------

class HeadlineRow(NamedTuple):
    metric: str
    stands_for: str  # the seed's dataset the row is measured on or stands in for, e.g. "pokemon150"
    ours: float  # our best recipe's mean, to keep the best row of several studies
    text: str  # the table row
    study: str  # whose results page the row links to


def headline_rows(data: dict) -> list[HeadlineRow]:
    """One row per dataset of a study: the seed's best published figure among the recipes run on it,
    and our best recipe by the same metric (accuracy when nothing was published). A study that
    pretrains is headlined by its pretrained backbones instead."""
    from smallvision.report.collect import COMPARABLE

    if data.get("ssl"):
        return ssl_headline_rows(data)
    meta, rows = data["metadata"], []
    for dataset, entry in data["datasets"].items():
        refs = [(recipe, row["published"]) for recipe, row in entry["recipes"].items() if row["published"]]
        metric = next((m for m in COMPARABLE if any(ref["metric"] == m for _, ref in refs)), "accuracy")
        theirs = max(((ref["value"], ref["source"]) for _, ref in refs if ref["metric"] == metric), default=None)
        best = entry.get("seed_figure")  # the seed's best accuracy, maybe by a recipe this study did not run
        if metric == "accuracy" and best and (theirs is None or best["value"] > theirs[0]):
            theirs = (best["value"], best["source"])
        ours = sorted((item for item in entry["recipes"].items() if metric in item[1]),
                      key=lambda item: (-item[1][metric], item[0]))
        theirs_text = f"{theirs[0]:.3f} ({report_name(theirs[1])})" if theirs else "none"
        stands_for = entry.get("seed_dataset") or dataset
        if entry.get("seed_dataset"):
            dataset = f"{dataset} (for {entry['seed_dataset']})"
        ours_text = f"`{ours[0][0]}` {figure(ours[0][1], metric)}" if ours else "n/a"
        label = metric.replace("_", " ")
        rows.append(HeadlineRow(label, stands_for, ours[0][1][metric] if ours else float("-inf"),
                                f"| {dataset} | {label} | {theirs_text} | {ours_text} | {meta['date'][:10]} | "
                                f"[{data['study']}] |", data["study"]))
    return rows


def ssl_headline_rows(data: dict) -> list[HeadlineRow]:
    """Per dataset, the best mean fine-tune accuracy of a backbone pretrained without labels (from
    one pretraining seed, ± is test-set sampling only, as the row says)."""
    import pandas as pd

    from smallvision.report.ssl import best_pretrained, finetune_text

    rows, date, frame = [], data["metadata"]["date"][:10], pd.DataFrame(data["ssl"]["rows"])
    for dataset in frame.dataset.unique():
        best = best_pretrained(frame, dataset)
        if best is None:
            continue
        seed = data["ssl"].get("seed_figures", {}).get(dataset)
        theirs = f"{seed['value']:.3f} ({report_name(seed['source'])})" if seed else "none"
        stands_for = data.get("datasets", {}).get(dataset, {}).get("seed_dataset")
        label = f"{dataset} (for {stands_for})" if stands_for else dataset
        rows.append(HeadlineRow("SSL fine-tune accuracy", stands_for or dataset, float(best[1].finetune_accuracy.mean()),
                                f"| {label} | SSL fine-tune accuracy | {theirs} | `{best[0]}` "
                                f"{finetune_text(best[1], data['confidence'])} | {date} | [{data['study']}] |",
                                data["study"]))
    return rows


def best_of_studies(rows: list[HeadlineRow]) -> list[HeadlineRow]:
    """Of the rows that several studies or stand-ins give one seed dataset and metric, the one with
    our best figure (the first's on a tie): a study of baselines does not headline a dataset that
    another study does better on, and the README shows each seed's figure once, beside our best on
    its data at any resolution or split (the others are on their results pages), not the history
    of every stand-in."""
    best: dict[tuple[str, str], HeadlineRow] = {}
    for row in rows:
        key = (row.stands_for, row.metric)
        if key not in best or row.ours > best[key].ours:
            best[key] = row
    return [row for row in rows if best[(row.stands_for, row.metric)] is row]


def ssl_seeds(data: dict) -> int:
    """How many seeds a study's SSL recipes ran with."""
    return len({row["seed"] for row in data["ssl"]["rows"]})


def report_name(source: str) -> str:
    """'Pokémon types' of 'Pokémon types student report, ResNet50 focal loss': which seed report."""
    return source.split(" student")[0]


def committed_studies(folder: Path = RESULTS) -> dict[str, dict]:
    """Each committed results page's data (docs/results/<study>.json), by study name, in name order."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def render_headline(folder: Path = RESULTS) -> str:
    studies = committed_studies(folder)
    lines = [f"<!-- generated by `{REGENERATE}` from docs/results/*.json: do not edit -->",
             "| dataset | metric | published (seed) | ours: best recipe, mean ± 95% CI over seeds | date | results |",
             "|---|---|---|---|---|---|"]
    shown = best_of_studies([row for data in studies.values() for row in headline_rows(data)])
    lines += [row.text for row in shown]
    if not studies:
        lines.append("| (no results yet: `python -m smallvision.docs results STUDY`) | | | | | |")
    if any(ssl_seeds(data) == 1 for data in studies.values() if data.get("ssl")):
        lines += ["", "From 1 SSL seed, ± is the interval of test-set sampling alone."]
    # Machines and links only for the pages the table cites: the README would otherwise grow with
    # every study (docs/results/ lists them all), and an unused link definition shows nothing.
    cited = {row.study for row in shown}
    devices: dict[str, list[str]] = {}
    for name, data in studies.items():
        if name in cited:
            devices.setdefault(device_text(data["metadata"]), []).append(name)
    ran_on = " ".join(f"{'Studies' if len(names) > 1 else 'Study'} {', '.join(names)} ran on {device}."
                      for device, names in devices.items())
    lines += ["", *textwrap.wrap(ran_on, width=120, break_long_words=False, break_on_hyphens=False)]  # README's width
    lines += [""] + [f"[{name}]: docs/results/{name}.md" for name in studies if name in cited]
    return "\n".join(lines)


# ---- docs/ssl.md's verdicts block ----------------------------------------------------------------

def render_ssl_verdicts(folder: Path = RESULTS) -> str:
    """Every backbone pretrained without labels, of every committed study, against its baseline on
    each measure, paired over seeds: the answers of all SSL studies in one table, drawn from their
    pages' data (the figures themselves, and which baseline each cell is against, are on the pages)."""
    import pandas as pd

    from smallvision.report.ssl import paired_gain, per_recipe

    studies = [data for data in committed_studies(folder).values() if data.get("ssl")]
    larger = same_runs_elsewhere(studies)
    ks = sorted({k for data in studies for k in data["ssl"]["knn_k"]}, reverse=True)
    measures = [(f"kNN@{k}", f"knn{k}_accuracy") for k in ks] + [("linear probe", "probe_accuracy"),
                                                                  ("fine-tune", "finetune_accuracy")]
    lines = [f"<!-- generated by `{REGENERATE}` from docs/results/*.json: do not edit -->",
             "| study | SSL recipe | backbone, start | epochs | seeds | " + " | ".join(label for label, _ in measures) + " |",
             "|---|---|---|---:|---:|" + "---|" * len(measures)]
    for data in studies:
        frame = pd.DataFrame(data["ssl"]["rows"])
        for dataset in frame.dataset.unique():
            recipes = per_recipe(frame, dataset)
            for name, rows in recipes.items():
                if rows.method.iloc[0] == "none" or (data["study"], dataset, name) in larger:
                    continue
                cells = [verdict_cell(paired_gain(name, recipes, metric, data["confidence"])) if metric in rows else ""
                         for _, metric in measures]
                first = rows.iloc[0]
                start = {"none": "random init", "imagenet": "ImageNet"}.get(first.weights, first.weights)
                lines.append(f"| [{data['study']}](results/{data['study']}.md) | `{name}` | {first.backbone}, {start} | "
                             f"{int(first.pretrain_epochs)} | {len(rows)} | " + " | ".join(cells) + " |")
    if larger:
        grouped: dict[tuple[str, str], list[str]] = {}  # (recipe, the study that holds its runs) -> left-out studies
        for (study, _, recipe), other in larger.items():
            grouped.setdefault((recipe, other), []).append(study)
        left_out = "; ".join(f"`{recipe}` of {', '.join(sorted(studies))} (in {other})"
                             for (recipe, other), studies in grouped.items())
        lines += ["", *textwrap.wrap(f"Left out as the same runs as a row with more seeds: {left_out}.", width=120,
                                     break_long_words=False, break_on_hyphens=False)]
    return "\n".join(lines)


def same_runs_elsewhere(studies: list[dict]) -> dict[tuple[str, str, str], str]:
    """(study, dataset, recipe) -> the study whose row of that recipe holds the same runs and more
    seeds (of several, the one with most): e.g. a 3-seed page whose seeds a 5-seed page repeated
    with the same figures, or pages that a pooled page adds up. The smaller row is no further
    evidence; showing both would count the same runs twice."""
    from smallvision.pool import differing_figures

    runs: dict[tuple[str, str], dict[str, dict[int, dict]]] = {}  # (dataset, recipe) -> study -> seed -> row
    for data in studies:
        for row in data["ssl"]["rows"]:
            if row["method"] != "none":
                runs.setdefault((row["dataset"], row["ssl_recipe"]), {}).setdefault(data["study"], {})[row["seed"]] = row
    larger = {}
    for (dataset, recipe), by_study in runs.items():
        for study, seeds in by_study.items():
            holders = [(-len(others), other) for other, others in by_study.items()
                       if set(others) > set(seeds) and not any(differing_figures(seeds[s], others[s]) for s in seeds)]
            if holders:
                larger[(study, dataset, recipe)] = min(holders)[1]
    return larger


def verdict_cell(gain: tuple[float, float, str, str]) -> str:
    """'**above** +0.027 ± 0.015': the verdict first, bold where the interval excludes 0."""
    difference, half, verdict, _ = gain
    return f"{f'**{verdict}**' if verdict != 'within noise' else verdict} {difference:+.3f} ± {half:.3f}"


# ---- generated blocks inside hand-written pages ----------------------------------------------------

def block_pattern(name: str) -> re.Pattern:
    return re.compile(re.escape(f"<!-- {name}:start -->") + r"\n.*?" + re.escape(f"<!-- {name}:end -->"), re.S)


def generated_block(text: str, name: str, where: Path) -> str:
    """What a page holds between its `<!-- name:start -->` and `<!-- name:end -->` markers."""
    match = block_pattern(name).search(text)
    if not match:
        raise UserError(f"{where} has no block between <!-- {name}:start --> and <!-- {name}:end -->: "
                        "put the two markers back where the generated table belongs")
    return match.group(0)[len(f"<!-- {name}:start -->") + 1:-len(f"<!-- {name}:end -->")].rstrip("\n")


def update_block(page: Path, name: str, content: str) -> bool:
    """Rewrites the page's generated block `name` with `content`; True when it changed."""
    text = page.read_text()
    generated_block(text, name, page)  # the markers must be there
    new = block_pattern(name).sub(lambda _: f"<!-- {name}:start -->\n{content}\n<!-- {name}:end -->", text)
    if new != text:
        page.write_text(new)
    return new != text


@exits_cleanly
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m smallvision.docs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    results = sub.add_parser("results", help="docs/results/STUDY.md and .json from a finished run")
    results.add_argument("study")
    results.add_argument("--reports", type=Path, default=Path("reports"), help="the run's reports folder")
    results.add_argument("--params", type=Path, default=Path("params.yaml"), help="the run's params.yaml")
    pool = sub.add_parser("pool", help="docs/results/NAME.md and .json: the seeds of several SSL pages as one")
    pool.add_argument("study", metavar="NAME")
    pool.add_argument("--from", dest="sources", nargs="+", required=True, metavar="STUDY",
                      help="committed results pages (docs/results/STUDY.json) of the same recipes, other seeds")
    compare = sub.add_parser("compare", help="print one recipe of a committed page minus another's, with the interval")
    compare.add_argument("first", metavar="STUDY:RECIPE", help="or STUDY:DATASET:RECIPE")
    compare.add_argument("second", metavar="STUDY:RECIPE")
    args = parser.parse_args(argv)
    if args.command == "compare":  # reads the committed pages, writes nothing
        print(compare_text(args.first, args.second))
        return
    if args.command in ("results", "pool") and not re.fullmatch(r"\w+", args.study):
        raise UserError(f"a study name holds only letters, digits and '_' (got {args.study!r})")
    if args.command == "results":
        for path in write_results(study_results(args.study, args.reports, args.params)):
            print(f"wrote {path}")
    if args.command == "pool":
        from smallvision.pool import pooled_results

        if (STUDIES / f"{args.study}.yaml").exists() or args.study in args.sources:
            raise UserError(f"{args.study} names a study: a pooled page needs a name of its own")
        for path in write_results(pooled_results(args.study, args.sources, RESULTS)):
            print(f"wrote {path}")
    for sidecar in sorted(RESULTS.glob("*.json")):  # each results page, redrawn from its data
        sidecar.with_suffix(".md").write_text(results_markdown(json.loads(sidecar.read_text())))
    DOCS.mkdir(exist_ok=True)
    (DOCS / "recipes.md").write_text(render_recipes())
    print(f"wrote {DOCS / 'recipes.md'}")
    print("README.md headline block " + ("rewritten" if update_block(README, "headline", render_headline())
                                         else "already up to date"))
    print(f"{SSL_DOC} verdicts block " + ("rewritten" if update_block(SSL_DOC, "ssl-verdicts", render_ssl_verdicts())
                                          else "already up to date"))


if __name__ == "__main__":
    main()
