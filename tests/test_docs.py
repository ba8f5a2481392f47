"""The README cannot drift from the code: its commands name real parameters and modules, its
results table is what the generator renders from docs/results, and the generated pages match
the recipe files."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from smallvision import docs, profile
from smallvision.core.errors import UserError
from smallvision.options.schema import read_yaml_file

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PARAMS_FILES = ("params.yaml", "recipes.yaml", "ssl.yaml")
SHELL_BLOCK = re.compile(r"^```(?:bash|sh|shell|console)\n(.*?)^```", re.S | re.M)
PYTHON = re.compile(r"python[\d.]*$")


def readme_commands(text: str) -> list[str]:
    """The command lines of the README's shell blocks, continuation lines joined."""
    lines = []
    for block in SHELL_BLOCK.findall(text):
        lines += [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]
    return lines


def overrides_and_modules(line: str) -> tuple[list[str], list[str]]:
    """The `-S` values and the `python -m` modules of one command line."""
    words = shlex.split(line, comments=True)
    overrides = [words[i + 1] for i, word in enumerate(words[:-1]) if word in ("-S", "--set-param")]
    modules = [words[i + 2] for i, word in enumerate(words[:-2]) if PYTHON.match(word) and words[i + 1] == "-m"]
    return overrides, modules


def override_error(override: str, folder: Path = REPO) -> str | None:
    """Why `dvc exp run -S override` would not apply to the files in `folder`, or None.

    DVC's form is [file:]key=value (file params.yaml when not given, split at ':' only before
    the '='); the key may start with `+` (add: its parent must exist, the key must not),
    `++` (add or replace: its parent must exist) or `~` (remove: the key must exist)."""
    if ":" in override.partition("=")[0]:
        file, _, override = override.partition(":")
    else:
        file = "params.yaml"
    if file not in PARAMS_FILES:
        return f"{file} is not a params file ({', '.join(PARAMS_FILES)})"
    prefix = re.match(r"\+\+|\+|~|", override).group(0)
    key = override[len(prefix):].partition("=")[0]
    if prefix != "~" and "=" not in override:
        return f"{override}: no '=value'"
    parts = key.split(".")
    adds = prefix in ("+", "++")
    node = yaml.safe_load((folder / file).read_text())
    for depth, part in enumerate(parts[:-1] if adds else parts):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return f"{file}: no key {'.'.join(parts[:depth + 1])}"
    if adds and not isinstance(node, dict):
        return f"{file}: {'.'.join(parts[:-1]) or 'the top level'} is not a mapping to add {parts[-1]} to"
    if prefix == "+" and parts[-1] in node:
        return f"{file}: {key} exists already (`+` adds a new key; set it without a prefix, or with `++`)"
    return None


def module_error(name: str) -> str | None:
    """Why `python -m name` would not run, or None."""
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError as err:
        return f"{name}: {err}"
    if spec is None:
        return f"no module {name}"
    if spec.submodule_search_locations is not None and importlib.util.find_spec(f"{name}.__main__") is None:
        return f"{name} is a package without __main__"
    return None


COMMANDS = readme_commands(README.read_text())
CHECKED = [(line, overrides_and_modules(line)) for line in COMMANDS]


def test_readme_has_commands_to_check():
    overrides = [o for _, (found, _) in CHECKED for o in found]
    modules = [m for _, (_, found) in CHECKED for m in found]
    assert len(overrides) >= 8 and len(modules) >= 8, (overrides, modules)


@pytest.mark.parametrize("line", [line for line, (overrides, _) in CHECKED if overrides])
def test_readme_set_params_are_valid(line):
    errors = [error for override in overrides_and_modules(line)[0] if (error := override_error(override))]
    assert not errors, f"README command `{line}`: " + "; ".join(errors)


@pytest.mark.parametrize("line", [line for line, (_, modules) in CHECKED if modules])
def test_readme_modules_exist(line):
    errors = [error for module in overrides_and_modules(line)[1] if (error := module_error(module))]
    assert not errors, f"README command `{line}`: " + "; ".join(errors)


@pytest.mark.parametrize("override, problem", [
    ("recipes.yaml:cnn.optimizer.lrr=0.1", "no key cnn.optimizer.lrr"),
    ("recipes.cnn.epochs=3", "no key recipes"),
    ("+train.epochs=3", "exists already"),
    ("+nosuch.section.key=1", "no key nosuch"),
    ("~datasets.nosuch", "no key datasets.nosuch"),
    ("other.yaml:a=1", "not a params file"),
])
def test_override_check_rejects(override, problem):
    assert problem in (override_error(override) or "")


@pytest.mark.parametrize("override", [
    "recipes.yaml:cnn.optimizer.lr=0.01", "ssl.yaml:pretrain.epochs=3", "recipes.yaml:++cnn.optimizer.lr=0.01",
    "recipes.yaml:++mlp.epochs=3", "+runs.digits-cnn-s9={dataset: digits, recipe: cnn, seed: 9, defaults: train}",
    "~datasets.digits", "launcher=torchrun --nproc_per_node=2", "recipes.yaml:cars_retrieval_knn.ks.0=5",
])
def test_override_check_accepts(override):
    assert override_error(override) is None


def test_module_check():
    assert module_error("smallvision.docs") is None
    assert module_error("smallvision.no_such_module")
    assert module_error("smallvision.report")  # a package without __main__


def test_readme_headline_block_matches_results():
    assert docs.generated_block(README.read_text(), "headline", README) == \
        docs.render_headline(REPO / "docs" / "results"), \
        "README.md's results table differs from docs/results/*.json: run `python -m smallvision.docs`"


def test_results_pages_match_their_data():
    sidecars = sorted((REPO / "docs" / "results").glob("*.json"))
    assert sidecars, "no committed results (docs/results/*.json)"
    for sidecar in sidecars:
        data = json.loads(sidecar.read_text())
        redo = f"python -m smallvision.docs pool {sidecar.stem} --from " if data.get("pooled_from") else \
            f"python -m smallvision.profile {sidecar.stem} "
        assert data["study"] == sidecar.stem and redo in data["command"]
        assert sidecar.with_suffix(".md").read_text() == docs.results_markdown(data), \
            f"{sidecar.with_suffix('.md')} is stale or was edited by hand: run `python -m smallvision.docs`"


def estimate_upper_minutes(estimate: str) -> float | None:
    """The upper end of a study's CPU estimate ('40-45 min', '70 min', '4.5-5 h'); None for 'days'."""
    match = re.fullmatch(r"(?:[\d.]+-)?([\d.]+) (min|h)", estimate)
    return None if match is None else float(match[1]) * (60 if match[2] == "h" else 1)


def measured_minutes(data: dict) -> float:
    """What a results page's runs spent training, pretraining, probing and fine-tuning, summed over
    seeds: less than the study's wall time, which adds preparing, evaluating and the report."""
    seconds = sum(row.get("train_seconds", 0) * row["n_seeds"]
                  for entry in data["datasets"].values() for row in entry["recipes"].values())
    seconds += sum(row.get(key) or 0 for row in data.get("ssl", {}).get("rows", [])
                   for key in ("pretrain_seconds", "probe_seconds", "finetune_seconds"))
    return seconds / 60


def test_each_studys_cpu_estimate_covers_what_its_results_page_measured():
    """`profile --list` tells a user how long a study takes before they start it: no committed
    run of the study may have spent longer in its training loops alone than the estimate's upper end."""
    for sidecar in sorted((REPO / "docs" / "results").glob("*.json")):
        data = json.loads(sidecar.read_text())
        if data.get("pooled_from"):
            continue  # no study of its own: its sources' pages are checked against theirs
        estimate = read_yaml_file(REPO / "studies" / f"{data['study']}.yaml")["estimate"]["cpu"]
        upper = estimate_upper_minutes(estimate)
        assert upper is None or measured_minutes(data) <= upper, \
            f"studies/{data['study']}.yaml estimates {estimate}; its results page measured {measured_minutes(data):.0f} min"


def test_recipes_page_is_up_to_date():
    assert (REPO / "docs" / "recipes.md").read_text() == docs.render_recipes(REPO), \
        "docs/recipes.md is older than recipes.yaml/catalogue.yaml: run `python -m smallvision.docs`"


def test_readme_is_short():
    lines = README.read_text().splitlines()
    assert len(lines) <= 220
    start, end = lines.index("<!-- headline:start -->"), lines.index("<!-- headline:end -->")
    # The headline block's table rows are generated (a row cannot wrap); its prose wraps, and is held to the limit too.
    long = [(number, len(line)) for number, line in enumerate(lines, 1) if len(line) > 160
            and not (start < number - 1 < end and line.startswith("|"))]
    assert not long, f"lines over 160 characters (line, length): {long}"


def test_readme_links_exist():
    targets = re.findall(r"\]\(((?!https?:)[^)#]+)\)", README.read_text())
    assert targets
    missing = [target for target in targets if not (REPO / target).exists()]
    assert not missing, missing


def test_headline_row_compares_like_with_like():
    """The published figure is the seed's best for the dataset; ours is our best recipe by the
    same metric, with its interval over seeds."""
    row = {"accuracy": 0.8, "accuracy_ci_low": 0.7, "accuracy_ci_high": 0.9, "accuracy_n": 3,
           "macro_f1": 0.5, "macro_f1_ci_low": 0.4, "macro_f1_ci_high": 0.6, "macro_f1_n": 3, "train_seconds": 1.0}
    data = {"study": "x", "metadata": {"device": "GPU", "date": "2026-01-02 03:04 UTC"}, "datasets": {"cars": {
        "seed_dataset": None, "recipes": {
            "a": {**row, "seeds": [0, 1, 2], "published": {"metric": "accuracy", "value": 0.85, "source": "s"}},
            "b": {**row, "accuracy": 0.9, "seeds": [0, 1, 2], "published": {"metric": "accuracy", "value": 0.6, "source": "s"}},
            "c": {**row, "accuracy": 0.95, "seeds": [0, 1, 2], "published": None}}}}}
    assert [row.text for row in docs.headline_rows(data)] == [
        "| cars | accuracy | 0.850 (s) | `c` 0.950 ± 0.100 (n=3) | 2026-01-02 | [x] |"]
    assert "| `c` | 0, 1, 2 | 0.950 ± 0.100 (n=3) | best | 0.500 ± 0.100 (n=3) | best | 1.0 |  |" in docs.results_markdown(
        {**data, "command": "c", "confidence": 0.95,
         "metadata": {**data["metadata"], "git_commit": "abc", "python": "3.11", "libraries": {}}})


def test_headline_shows_each_seed_dataset_once_at_its_best_stand_in(tmp_path):
    """Stand-ins for one seed dataset (other resolutions, splits) share its row: the README gives the
    seed's figure once, beside our best on its data, not a row for every stand-in ever run."""
    def study(name: str, datasets: dict) -> dict:
        row = {"accuracy_ci_low": 0.1, "accuracy_ci_high": 0.2, "accuracy_n": 3, "seeds": [0, 1, 2], "published": None}
        return {"study": name, "metadata": {"device": "CPU", "date": "2026-01-02 03:04 UTC"}, "datasets": {
            dataset: {"seed_dataset": seed, "recipes": {recipe: {**row, "accuracy": value}}}
            for dataset, (seed, recipe, value) in datasets.items()}}

    (tmp_path / "cars.json").write_text(json.dumps(study("cars", {"cars": (None, "seeds_head", 0.4),
                                                                  "cars_192": ("cars", "ours", 0.7)})))
    (tmp_path / "cars_big.json").write_text(json.dumps(study("cars_big", {"cars_224": ("cars", "ours", 0.8)})))
    (tmp_path / "pets.json").write_text(json.dumps(study("pets", {"pets_64": ("pets", "ours", 0.6)})))
    headline = docs.render_headline(tmp_path)
    rows = [line for line in headline.splitlines() if line.startswith("| ") and "| metric |" not in line]
    assert [row.split(" | ")[0] for row in rows] == ["| cars_224 (for cars)", "| pets_64 (for pets)"]
    assert "[cars]:" not in headline and "[cars_big]: docs/results/cars_big.md" in headline


def test_headline_sets_the_seeds_best_figure_even_from_a_recipe_not_run():
    """A CPU study runs the seed's CNN (0.714) but not its ResNet18 fine-tune (0.78, a download):
    the headline still sets the seed's best beside ours."""
    row = {"accuracy": 0.84, "accuracy_ci_low": 0.83, "accuracy_ci_high": 0.85, "accuracy_n": 3, "seeds": [0, 1, 2]}
    data = {"study": "x", "metadata": {"device": "CPU", "date": "2026-01-02 03:04 UTC"}, "datasets": {"cifar10": {
        "seed_dataset": None,
        "recipes": {"cnn": {**row, "published": {"metric": "accuracy", "value": 0.714, "source": "CIFAR-10 student report"}},
                    "fast": {**row, "published": None}},
        "seed_figure": {"metric": "accuracy", "value": 0.78, "source": "CIFAR-10 student report", "minutes": None}}}}
    assert docs.headline_rows(data)[0].text.split(" | ")[2] == "0.780 (CIFAR-10)"


def test_headline_keeps_the_best_study_of_each_dataset_and_metric(tmp_path):
    """A study of baselines run on a dataset that another study does better on does not headline
    it; a dataset or metric that only it reports keeps its row."""
    def study(name: str, datasets: dict) -> dict:
        row = {"accuracy_ci_low": 0.1, "accuracy_ci_high": 0.2, "accuracy_n": 3, "seeds": [0, 1, 2], "published": None}
        return {"study": name, "metadata": {"device": "CPU", "date": "2026-01-02 03:04 UTC"}, "datasets": {
            dataset: {"seed_dataset": None, "recipes": {recipe: {**row, "accuracy": value}}}
            for dataset, (recipe, value) in datasets.items()}}

    (tmp_path / "baselines.json").write_text(json.dumps(study("baselines", {"pets": ("knn", 0.3), "cars": ("knn", 0.1)})))
    (tmp_path / "pets.json").write_text(json.dumps(study("pets", {"pets": ("finetune", 0.9)})))
    (tmp_path / "pets_small.json").write_text(json.dumps(study("pets_small", {"pets": ("mlp", 0.5)})))
    headline = docs.render_headline(tmp_path)
    rows = [line for line in headline.splitlines() if line.startswith("| ") and "| metric |" not in line]
    assert [row.split(" | ")[3].split(" ")[0] for row in rows] == ["`knn`", "`finetune`"]
    assert rows[0].startswith("| cars |") and rows[1].startswith("| pets |")
    # a link for each page the table cites; none for a study that headlines nothing (it would render nothing)
    assert "[baselines]: docs/results/baselines.md" in headline and "[pets]: docs/results/pets.md" in headline
    assert "[pets_small]:" not in headline
    # the machines line names the cited studies only, for the same reason
    assert "Studies baselines, pets ran on CPU." in headline and "pets_small ran" not in headline
    # two CPUs of one name, told apart where their runs recorded which
    data = study("pets_small", {"pets": ("mlp", 0.95)})
    data["metadata"]["cpu"] = "cpu family 25, model 17"
    (tmp_path / "pets_small.json").write_text(json.dumps(data))
    assert "Study baselines ran on CPU. Study pets_small ran on CPU (cpu family 25, model 17)." in \
        docs.render_headline(tmp_path)


def test_results_page_sets_ours_beside_a_published_figure_on_its_own_metric():
    """The seed's retrieval figure is k = 3 accuracy, not the accuracy column (k picked on
    validation): the page gives ours on k = 3 beside it, with its interval."""
    row = {"accuracy": 0.33, "accuracy_ci_low": 0.31, "accuracy_ci_high": 0.35, "accuracy_n": 3,
           "k3_accuracy": 0.324, "k3_accuracy_ci_low": 0.301, "k3_accuracy_ci_high": 0.347, "k3_accuracy_n": 3,
           "n_seeds": 3, "train_seconds": 380.0, "seeds": [0, 1, 2],
           "published": {"metric": "k3_accuracy", "value": 0.804, "source": "Stanford Cars student report"}}
    data = {"study": "x", "command": "c", "confidence": 0.95,
            "metadata": {"device": "CPU", "date": "2026-01-02 03:04 UTC", "git_commit": "abc", "python": "3.11",
                         "libraries": {}},
            "datasets": {"cars": {"seed_dataset": None, "recipes": {"knn": row}}}}
    assert "| k3 accuracy 0.804; ours 0.324 ± 0.023 (n=3) |" in docs.results_markdown(data)


def test_results_page_says_which_recipes_are_within_noise_of_the_best():
    """From the summaries the sidecar keeps: Welch's interval of each recipe minus the first
    (best mean accuracy), with a verdict, per metric; one run gives no interval."""
    def summary(mean, std, n=3):
        half = {3: 4.302652729911275}.get(n, float("nan")) * std / n ** 0.5
        return {"accuracy": mean, "accuracy_std": std, "accuracy_n": n, "accuracy_ci_low": mean - half,
                "accuracy_ci_high": mean + half, "n_seeds": n, "seeds": list(range(n)), "train_seconds": 1.0,
                "published": None}
    data = {"study": "x", "command": "c", "confidence": 0.95,
            "metadata": {"device": "CPU", "date": "2026-01-02 03:04 UTC", "git_commit": "abc", "python": "3.11",
                         "libraries": {}},
            "datasets": {"d": {"seed_dataset": None, "recipes": {
                "best": summary(0.90, 0.01), "close": summary(0.89, 0.02), "far": summary(0.70, 0.01),
                "once": summary(0.80, float("nan"), n=1), "fixed": summary(0.85, 0.0)}},
                "e": {"seed_dataset": None, "recipes": {"fixed_best": summary(0.85, 0.0), "fixed_too": summary(0.80, 0.0)}}}}
    lines = {line.split(" | ")[0]: line for line in docs.results_markdown(data).splitlines() if line.startswith("| `")}
    assert "| best |" in lines["| `best`"]
    assert "| -0.010 ± 0.042, within noise |" in lines["| `close`"]  # Welch: [-0.052, 0.032]
    assert "| -0.200 ± 0.023, below |" in lines["| `far`"]
    assert "| -0.100 (no interval) |" in lines["| `once`"]
    assert "| -0.050 ± 0.025, below |" in lines["| `fixed`"]  # the best's spread alone
    assert "| -0.050 (identical over seeds) |" in lines["| `fixed_too`"]  # no spread on either side


def test_results_page_pairs_the_seeds_whose_figures_it_keeps():
    """Runs of one seed share the split, so a page that keeps each seed's figures compares two
    recipes by their per-seed differences: a difference that is the same on every seed is clear
    even where the seeds move both recipes a lot (Welch's interval from the summaries would call it
    noise). Recipes that share fewer than two seeds fall back to Welch's."""
    from smallvision.report.stats import interval

    def row(by_seed: dict[int, float]) -> dict:
        mean, std, n, low, high = interval(list(by_seed.values()))
        return {"accuracy": mean, "accuracy_std": std, "accuracy_n": n, "accuracy_ci_low": low,
                "accuracy_ci_high": high, "n_seeds": n, "seeds": list(by_seed), "train_seconds": 1.0,
                "published": None, "per_seed": {"accuracy": {str(seed): value for seed, value in by_seed.items()}}}
    recipes = {"best": row({0: 0.90, 1: 0.80, 2: 0.85}), "steady": row({0: 0.88, 1: 0.785, 2: 0.825}),
               "shifted": row({0: 0.87, 1: 0.77, 2: 0.82}), "elsewhere": row({1: 0.79, 3: 0.70, 4: 0.75})}
    data = {"study": "x", "command": "c", "confidence": 0.95,
            "metadata": {"device": "CPU", "date": "2026-01-02 03:04 UTC", "git_commit": "abc", "python": "3.11",
                         "libraries": {}},
            "datasets": {"d": {"seed_dataset": None, "recipes": recipes}}}
    page = docs.results_markdown(data)
    lines = {line.split(" | ")[0]: line for line in page.splitlines() if line.startswith("| `")}
    assert "| -0.020 ± 0.012, below |" in lines["| `steady`"]  # differences -0.020, -0.015, -0.025
    assert "| -0.030 (the same difference on every seed) |" in lines["| `shifted`"]
    welch = docs.versus_best({k: v for k, v in recipes["elsewhere"].items() if k != "per_seed"}, recipes["best"],
                             "accuracy", 0.95)
    assert docs.versus_best(recipes["elsewhere"], recipes["best"], "accuracy", 0.95) == welch  # one seed shared
    assert "per-seed differences" in page and "Welch interval from the two recipes' means" not in page
    for recipe in recipes.values():  # a page from before 2026-12-05: summaries only, so Welch's, and says so
        del recipe["per_seed"]
    summaries_only = docs.results_markdown(data)
    assert "| -0.020 ± 0.111, within noise |" in summaries_only  # Welch: [-0.131, 0.091]
    assert "Welch interval from the two recipes' means" in summaries_only


def test_compare_sets_a_recipe_of_one_page_against_another_pages(tmp_path):
    """Paired over the seeds both pages keep (a seed's runs share the split), Welch's from the
    summaries where one page keeps none; a recipe named ambiguously or not at all is refused."""
    def page(study: str, by_dataset: dict) -> dict:
        recipes = {}
        for dataset, (recipe, by_seed) in by_dataset.items():
            mean, std, n = sum(by_seed) / len(by_seed), 0.01, len(by_seed)
            recipes[dataset] = {"seed_dataset": None, "recipes": {recipe: {
                "accuracy": mean, "accuracy_std": std, "accuracy_n": n, "accuracy_ci_low": mean - 0.02,
                "accuracy_ci_high": mean + 0.02, "n_seeds": n, "seeds": list(range(n)),
                "per_seed": {"accuracy": {str(seed): value for seed, value in enumerate(by_seed)}}}}}
        (tmp_path / f"{study}.json").write_text(json.dumps({"study": study, "confidence": 0.95, "datasets": recipes}))

    page("new", {"cars": ("hires", [0.71, 0.72, 0.70])})
    page("old", {"cars": ("hires", [0.70, 0.70, 0.68]), "cars_small": ("hires", [0.6, 0.6, 0.6])})
    text = docs.compare_text("new:hires", "old:cars:hires", tmp_path)
    assert "accuracy: 0.710 ± 0.020 (n=3) vs 0.693 ± 0.020 (n=3): +0.017 ± 0.014, above (paired over seeds 0, 1, 2)" in text
    old = json.loads((tmp_path / "old.json").read_text())
    del old["datasets"]["cars"]["recipes"]["hires"]["per_seed"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert "+0.017 ± 0.023, within noise (Welch, from the two summaries)" in \
        docs.compare_text("new:hires", "old:cars:hires", tmp_path)
    for spec, problem in (("old:hires", "ran hires on cars, cars_small: name one"), ("old:cars:lowres", "no recipe lowres"),
                          ("gone:hires", "expected STUDY:RECIPE or STUDY:DATASET:RECIPE of a committed page")):
        with pytest.raises(UserError, match=problem):
            docs.compare_text("new:hires", spec, tmp_path)


def test_results_data_keeps_each_seeds_figures_from_its_evaluation(tmp_path):
    for seed, accuracy in ((0, 0.5), (2, 0.625)):
        folder = tmp_path / "reports" / "eval" / "d" / "r" / f"s{seed}"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"accuracy": accuracy, "macro_f1": accuracy / 2, "log_loss": 1,
                                                         "accuracy_without_tta": accuracy - 0.125,
                                                         "accuracy_at_train_size": accuracy - 0.25}))
    assert docs.seed_figures(tmp_path, "d", "r", [0, 2]) == \
        {"accuracy": {"0": 0.5, "2": 0.625}, "macro_f1": {"0": 0.25, "2": 0.3125},
         "accuracy_without_tta": {"0": 0.375, "2": 0.5}, "accuracy_at_train_size": {"0": 0.25, "2": 0.375}}
    with pytest.raises(UserError, match=r"reports/eval/d/r/s1/metrics.json not found: run `dvc repro`"):
        docs.seed_figures(tmp_path, "d", "r", [0, 1])


def test_results_page_gives_test_time_augmentations_share_paired_over_seeds():
    """A recipe scored with and without its test-time augmentation (or at a test size and at its
    training size) gets the difference on the same weights, seed by seed; a recipe without it gets no line."""
    def row(accuracy: dict, without: dict | None, undone: str = "accuracy_without_tta") -> dict:
        per_seed = {"accuracy": accuracy, **({undone: without} if without else {})}
        mean = sum(accuracy.values()) / len(accuracy)
        return {"accuracy": mean, "accuracy_ci_low": mean - 0.01, "accuracy_ci_high": mean + 0.01, "accuracy_n": 3,
                "n_seeds": 3, "train_seconds": 1.0, "seeds": [0, 1, 2], "published": None, "per_seed": per_seed}

    data = {"study": "x", "command": "c", "confidence": 0.95,
            "metadata": {"device": "CPU", "date": "d", "git_commit": "abc", "python": "3.11", "libraries": {}},
            "datasets": {"cars": {"seed_dataset": None, "recipes": {
                "mirrored": row({"0": 0.72, "1": 0.73, "2": 0.71}, {"0": 0.71, "1": 0.72, "2": 0.69}),
                "plain": row({"0": 0.70, "1": 0.71, "2": 0.69}, None),
                "larger": {**row({"0": 0.74, "1": 0.75, "2": 0.76}, {"0": 0.72, "1": 0.73, "2": 0.74},
                                 "accuracy_at_train_size"), "train_size": 192.0, "test_size": 224.0}}}}}
    page = docs.results_markdown(data)
    assert "- `mirrored`: accuracy +0.013 ± 0.014, within noise (seeds 0, 1, 2)" in page  # 0.01, 0.01, 0.02
    assert "`plain`:" not in page
    sizes = page[page.index("The test size's share"):]
    assert "- `larger` (trained at 192 px, tested at 224): accuracy +0.020 (the same difference on every seed)" in sizes
    assert "`mirrored`" not in sizes
    del data["datasets"]["cars"]["recipes"]["mirrored"]["per_seed"]["accuracy_without_tta"]
    assert "Test-time augmentation's share" not in docs.results_markdown(data)

def test_results_page_times_each_recipe_to_the_seeds_figure():
    """Beside the seed's figure, how soon each recipe first reached it on val, against the seed's own time."""
    row = {"accuracy": 0.8, "accuracy_ci_low": 0.7, "accuracy_ci_high": 0.9, "accuracy_n": 3, "n_seeds": 3,
           "train_seconds": 160.0, "seeds": [0, 1, 2], "published": None}
    data = {"study": "x", "command": "c", "confidence": 0.95,
            "metadata": {"device": "CPU", "date": "2026-01-02 03:04 UTC", "git_commit": "abc", "python": "3.11",
                         "libraries": {}},
            "datasets": {"pokemon150": {"seed_dataset": None, "recipes": {
                "fast": {**row, "reach_target": 0.7, "reach_seconds": 90.4, "reach_n": 3},
                "never": {**row, "accuracy": 0.5, "reach_target": 0.7, "reach_n": 0},
                "knn": {**row, "accuracy": 0.4}},
                "seed_figure": {"metric": "accuracy", "value": 0.7, "source": "s", "minutes": 133}}}}
    page = docs.results_markdown(data)
    assert "| published (seed) | time to seed's 0.700 (val; the seed took 133 min) |" in page
    assert page.count("| 90 s (3 of 3 seeds) |") == 1 and "| not reached (0 of 3) |" in page
    assert page.splitlines()[-1].endswith("|  |")  # no learning curve (kNN): no time


def test_a_results_page_needs_params_its_command_rebuilds(tmp_path, monkeypatch):
    """The page's command (profile STUDY --seeds ...) must write the run's params.yaml from the committed
    one byte for byte: other seeds, another data folder or a hand edit are refused, naming the line."""
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("POKEMON150", "/data/pokemon150")
    committed = subprocess.run(["git", "show", "HEAD:params.yaml"], capture_output=True, text=True, check=True).stdout
    run_params = tmp_path / "params.yaml"
    run_params.write_text(profile.rewritten(profile.read_study("pokemon150_ssl", [0, 1]), committed,
                                            REPO / "recipes.yaml"))
    docs.check_params_reproduce("pokemon150_ssl", [0, 1], run_params)
    with pytest.raises(UserError, match=r"profile pokemon150_ssl --seeds 0 1 2` writes .*\(line \d+: 'launcher: python', "
                                                r"expected '  pokemon150-effnet_knn-s2:'"):
        docs.check_params_reproduce("pokemon150_ssl", [0, 1, 2], run_params)
    monkeypatch.setenv("POKEMON150", "/elsewhere")
    with pytest.raises(UserError, match="/data/pokemon150.*expected .*/elsewhere.*folder variables"):
        docs.check_params_reproduce("pokemon150_ssl", [0, 1], run_params)
    monkeypatch.delenv("POKEMON150")  # the run's shell set it, this one did not: the message says so
    with pytest.raises(UserError, match=r"as for the run \(\$POKEMON150 unset here, so data/raw/pokemon150\)"):
        docs.check_params_reproduce("pokemon150_ssl", [0, 1], run_params)
    monkeypatch.setenv("POKEMON150", "/data/pokemon150")
    run_params.write_text(run_params.read_text().replace("\n  epochs: 20\n", "\n  epochs: 3\n", 1))
    with pytest.raises(UserError, match="'  epochs: 3', expected '  epochs: 20'"):
        docs.check_params_reproduce("pokemon150_ssl", [0, 1], run_params)


def test_results_page_names_the_params_its_command_writes():
    data = {"study": "x", "command": "c", "confidence": 0.95, "datasets": {},
            "metadata": {"device": "CPU", "date": "d", "git_commit": "abc", "params_md5": "f00", "python": "3.11",
                         "libraries": {}}}
    assert "params.yaml" not in docs.results_markdown(data)  # a page from before the check claims nothing
    assert "- params.yaml: as the command above writes it (md5 f00)" in \
        docs.results_markdown({**data, "params_as_command": True})


def test_results_page_tells_cpus_of_one_name_apart_when_the_run_recorded_them():
    data = {"study": "x", "command": "c", "confidence": 0.95, "datasets": {},
            "metadata": {"device": "CPU: AMD EPYC, 2 threads", "date": "d", "git_commit": "abc", "python": "3.11",
                         "libraries": {}}}
    assert "- device: CPU: AMD EPYC, 2 threads\n" in docs.results_markdown(data)  # an older page: as it was
    data["metadata"]["cpu"] = "cpu family 25, model 17, stepping 1; torch kernels AVX512"
    assert "- device: CPU: AMD EPYC, 2 threads (cpu family 25, model 17, stepping 1; torch kernels AVX512)\n" in \
        docs.results_markdown(data)


def test_cpu_identity_names_the_instruction_set_torch_runs_on():
    import torch

    from smallvision.report.metadata import cpu_identity

    assert cpu_identity().endswith(f"; torch kernels {torch.backends.cpu.get_cpu_capability()}")


def test_ssl_study_compares_each_backbone_with_its_starting_point(tmp_path):
    """A pretrained backbone is judged against the `none` recipe of the same backbone and weights,
    with the interval of test-set sampling; the study's headline is its best SSL fine-tune."""
    base = {"dataset": "pokemon150", "seed": 0, "backbone": "efficientnet_lite0", "test_images": 1000,
            "knn20_accuracy": 0.05, "probe_accuracy": 0.1, "finetune_accuracy": 0.4, "embedding_spread_start": 0.2,
            "embedding_spread": 0.3, "pretrain_epochs": 20, "pretrain_seconds": 400.0, "pretrain_images_per_second": 200.0}
    rows = [{**base, "ssl_recipe": "effnet_random", "method": "none", "weights": "none", "pretrain_epochs": 0},
            {**base, "ssl_recipe": "simclr_effnet", "method": "simclr", "weights": "none", "knn20_accuracy": 0.12},
            {**base, "ssl_recipe": "byol_effnet", "method": "byol", "weights": "none", "knn20_accuracy": 0.06},
            {**base, "ssl_recipe": "effnet_imagenet", "method": "none", "weights": "imagenet", "finetune_accuracy": 0.8},
            {**base, "ssl_recipe": "moco_effnet_imagenet", "method": "moco", "weights": "imagenet",
             "finetune_accuracy": 0.75}]
    data = {"study": "x", "command": "c", "confidence": 0.95, "datasets": {},
            "metadata": {"device": "CPU", "date": "2026-01-02 03:04 UTC", "git_commit": "abc", "python": "3.11",
                         "libraries": {}},
            "ssl": {"knn_k": [20, 3], "rows": [{**row, "knn3_accuracy": row["knn20_accuracy"]} for row in rows],
                    "seed_figures": {"pokemon150": {"value": 0.3, "source": "Pokémon-150 student report, SSL"}}}}
    page = docs.results_markdown(data)
    assert "## pokemon150: self-supervised pretraining" in page
    # 0.12 vs 0.05 on 1,000 images: 1.96 * sqrt(.12*.88/1000 + .05*.95/1000) = 0.024
    assert "| +0.070 ± 0.024 above effnet_random |" in page
    assert "| +0.010 ± 0.020 within noise of effnet_random |" in page
    assert "| -0.050 ± 0.037 below effnet_imagenet |" in page  # fine-tune, against the ImageNet start
    # the seed's figure beside our best pretrained backbone (effnet_imagenet is a baseline, not pretrained)
    assert ("Published (seed): fine-tune accuracy 0.300 after pretraining without labels (Pokémon-150 student report, "
            "SSL). Ours: `moco_effnet_imagenet` 0.750 ± 0.027 (1 SSL seed).") in page
    assert [row.text for row in docs.headline_rows(data)] == [
        "| pokemon150 | SSL fine-tune accuracy | 0.300 (Pokémon-150) | `moco_effnet_imagenet` 0.750 ± 0.027 "
        "(1 SSL seed) | 2026-01-02 | [x] |"]
    (tmp_path / "x.json").write_text(json.dumps(data))
    assert "From 1 SSL seed, ± is the interval of test-set sampling alone." in docs.render_headline(tmp_path)
    del data["ssl"]["seed_figures"]  # a sidecar written before SSL figures were published
    assert "Published (seed)" not in docs.results_markdown(data) and "| none |" in docs.headline_rows(data)[0].text


def test_ssl_rows_over_seeds_give_means_with_intervals_and_paired_comparisons(tmp_path):
    """Three seeds: each figure is the mean ± the Student-t interval over seeds, and a backbone is
    compared with its baseline seed by seed (seed s pretrained from initialisation s). Here the
    initialisations differ a lot but pretraining adds 0.010-0.014 to each: paired, the gain is
    clear; the two means' intervals alone (± 0.050) would call it noise."""

    base = {"dataset": "d", "backbone": "efficientnet_lite0", "weights": "none", "test_images": 1000,
            "probe_accuracy": 0.1, "embedding_spread_start": 0.2, "embedding_spread": 0.3, "pretrain_epochs": 30,
            "pretrain_seconds": 100.0, "pretrain_images_per_second": 50.0}
    random_knn, finetune = [0.05, 0.07, 0.09], [0.40, 0.42, 0.47]
    random_probe, probe_gain = [0.20, 0.30, 0.25], [0.05, 0.06, 0.07]
    rows = [{**base, "ssl_recipe": "random", "method": "none", "seed": seed, "knn20_accuracy": random_knn[seed],
             "probe_accuracy": random_probe[seed], "finetune_accuracy": 0.4, "pretrain_epochs": 0,
             "pretrain_images_per_second": None}
            for seed in range(3)]
    rows += [{**base, "ssl_recipe": "byol", "method": "byol", "seed": seed,
              "knn20_accuracy": random_knn[seed] + gain, "probe_accuracy": random_probe[seed] + probe_gain[seed],
              "finetune_accuracy": finetune[seed], "embedding_spread": 0.04 if seed == 2 else 0.3}
             for seed, gain in enumerate([0.010, 0.012, 0.014])]
    data = {"study": "x", "command": "c", "confidence": 0.95, "datasets": {},
            "metadata": {"device": "CPU", "date": "2026-01-02 03:04 UTC", "git_commit": "abc", "python": "3.11",
                         "libraries": {}},
            "ssl": {"knn_k": [20], "rows": rows, "seed_figures": {"d": {"value": 0.3, "source": "s student report"}}}}
    table = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
             for line in docs.results_markdown(data).splitlines() if line.startswith("| ") and "|---" not in line}
    assert table["SSL recipe"][:7] == ["method", "backbone", "seeds", "kNN@20", "kNN@20 vs baseline", "linear probe",
                                       "linear probe vs baseline"]
    # random: 0.05, 0.07, 0.09 -> sd 0.02, 4.303 * 0.02 / sqrt(3) = 0.0497
    assert table["random"][2:4] == ["0, 1, 2", "0.0700 ± 0.0497"]
    # byol - random, seed by seed: 0.010, 0.012, 0.014 -> 4.303 * 0.002 / sqrt(3) = 0.005
    assert table["byol"][4] == "+0.012 ± 0.005 above random"
    # the probe, paired too: 0.05, 0.06, 0.07 over random's 0.20, 0.30, 0.25 -> 4.303 * 0.01 / sqrt(3) = 0.025
    assert table["byol"][6] == "+0.060 ± 0.025 above random"
    assert table["byol"][7] == "0.4300 ± 0.0896"  # fine-tune 0.40, 0.42, 0.47: 4.303 * 0.0361 / sqrt(3)
    assert table["byol"][10] == "1 of 3"  # seed 2's spread fell below a quarter of its start
    assert docs.headline_rows(data)[0].text.endswith("`byol` 0.430 ± 0.090 (3 SSL seeds) | 2026-01-02 | [x] |")
    (tmp_path / "x.json").write_text(json.dumps(data))
    assert "From 1 SSL seed" not in docs.render_headline(tmp_path)


def test_every_measured_k_gets_its_paired_comparison():
    """A study that measures kNN at several k shows each against the baseline: on
    pokemon150_ssl_cnn SimCLR is within noise of random init at k = 20 but above it at k = 3, and a
    page that compared only the first k would hide that the verdict depends on k."""
    import pandas as pd

    from smallvision.report.ssl import ssl_table

    base = {"dataset": "d", "backbone": "cnn", "weights": "none", "test_images": 1000, "probe_accuracy": 0.1,
            "finetune_accuracy": 0.4, "embedding_spread_start": 0.5, "embedding_spread": 0.5, "pretrain_epochs": 15,
            "pretrain_seconds": 300.0, "pretrain_images_per_second": 200.0}
    random_knn20, random_knn3 = [0.17, 0.21, 0.19], [0.23, 0.21, 0.22]
    rows = [{**base, "ssl_recipe": "random", "method": "none", "seed": seed, "knn20_accuracy": random_knn20[seed],
             "knn3_accuracy": random_knn3[seed]} for seed in range(3)]
    rows += [{**base, "ssl_recipe": "simclr", "method": "simclr", "seed": seed,
              "knn20_accuracy": random_knn20[seed] + gain20, "knn3_accuracy": random_knn3[seed] + gain3}
             for seed, (gain20, gain3) in enumerate([(0.03, 0.026), (-0.02, 0.027), (0.005, 0.028)])]
    simclr = ssl_table(pd.DataFrame(rows), "d", [20, 3], 0.95).set_index("SSL recipe").loc["simclr"]
    assert simclr["kNN@20 vs baseline"].endswith("within noise of random")
    assert simclr["kNN@3 vs baseline"] == "+0.027 ± 0.002 above random"  # 4.303 * 0.001 / sqrt(3)


def test_ssl_table_shows_the_effective_rank_where_the_runs_measured_it():
    """Runs that logged the effective rank get its column (mean over seeds, start -> end); pages
    drawn from runs before it keep their columns."""
    import pandas as pd

    from smallvision.report.ssl import ssl_table

    base = {"dataset": "d", "backbone": "cnn", "weights": "none", "test_images": 1000, "knn20_accuracy": 0.2,
            "probe_accuracy": 0.1, "finetune_accuracy": 0.4, "embedding_spread_start": 0.5, "embedding_spread": 0.7,
            "pretrain_epochs": 15, "pretrain_seconds": 300.0, "pretrain_images_per_second": 200.0}
    rows = [{**base, "ssl_recipe": "byol", "method": "byol", "seed": seed, "embedding_rank_start": 159.0,
             "embedding_rank": rank} for seed, rank in enumerate([50.0, 54.0])]
    table = ssl_table(pd.DataFrame(rows), "d", [20], 0.95)
    assert table["effective rank start -> end"].tolist() == ["159 -> 52"]
    older = [{key: value for key, value in row.items() if not key.startswith("embedding_rank")} for row in rows]
    assert "effective rank start -> end" not in ssl_table(pd.DataFrame(older), "d", [20], 0.95)


def test_a_pretrained_backbone_is_judged_against_its_best_starting_point():
    """Two random-init baselines (batch-norm statistics as initialised, and recalibrated): a gain
    is measured from the better one on each measure, never from the weaker."""
    import pandas as pd

    from smallvision.report.ssl import ssl_table

    base = {"dataset": "d", "seed": 0, "backbone": "efficientnet_lite0", "weights": "none", "test_images": 1000,
            "probe_accuracy": 0.1, "finetune_accuracy": 0.4, "embedding_spread_start": 0.2, "embedding_spread": 0.3,
            "pretrain_epochs": 0, "pretrain_seconds": 0.0, "pretrain_images_per_second": None}
    frame = pd.DataFrame([{**base, "ssl_recipe": "random_recalibrated", "method": "none", "knn20_accuracy": 0.02},
                          {**base, "ssl_recipe": "random_as_initialised", "method": "none", "knn20_accuracy": 0.08,
                           "finetune_accuracy": 0.38},
                          {**base, "ssl_recipe": "byol", "method": "byol", "knn20_accuracy": 0.06}])
    byol = ssl_table(frame, "d", [20], 0.95).set_index("SSL recipe").loc["byol"]
    # 1.96 * sqrt(.06*.94/1000 + .08*.92/1000) = 0.022: within noise of the better baseline, not above the weaker
    assert byol["kNN@20 vs baseline"] == "-0.020 ± 0.022 within noise of random_as_initialised"
    assert byol["fine-tune vs baseline"].endswith("within noise of random_recalibrated")


def test_ssl_figure_legend_covers_no_bar():
    """The legend sits outside the axes: inside, at the lower right, it hid the fine-tune bars of
    the last rows (pokemon150_ssl, where they reach 0.82)."""
    import pandas as pd

    from smallvision.report.ssl import ssl_figure

    frame = pd.DataFrame({"dataset": "d", "ssl_recipe": ["a", "b", "c"], "knn20_accuracy": [0.3, 0.5, 0.2],
                          "probe_accuracy": [0.5, 0.7, 0.3], "finetune_accuracy": [0.83, 0.95, 0.82]})
    fig = ssl_figure(frame, "d", 20, 0.95)
    fig.canvas.draw()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent()
    assert not any(legend.overlaps(bar.get_window_extent()) for bar in ax.patches if bar.get_width() > 0)


def test_recipes_page_lists_the_ssl_recipes_with_their_settings_and_notes():
    ssl_recipes = {"simclr_small": {"method": "simclr", "backbone": {"name": "efficientnet_lite0", "weights": "none"},
                                    "epochs": 30, "bn_stats": "recalibrate"},
                   "byol_small": {"method": "byol", "optimizer": {"lr": 0.03}, "prediction_lr_scale": 10},
                   "random_small": {"method": "none"}}
    catalogue = {"simclr_small": {"notes": "a note", "reference": {"source": "a seed", "results": {"d": {"accuracy": 0.3}}}}}
    page = docs.recipes_markdown({"cnn": {"epochs": 3}}, ssl_recipes, catalogue)
    supervised, ssl = page.split("## Self-supervised pretraining (ssl.yaml)")
    assert "`cnn`" in supervised and "`simclr_small`" not in supervised
    assert ("| `simclr_small` | a seed | simclr, efficientnet_lite0 (none), 30 epochs, batch-norm statistics recalibrate | "
            "d: accuracy 0.3 | a note |") in ssl
    assert "| `byol_small` |  | byol, lr 0.03, predictor lr x10 |  |  |" in ssl
    assert "| `random_small` |  | no pretraining (a baseline) |  |  |" in ssl


def test_every_recipe_has_a_note_in_the_catalogue():
    catalogue = read_yaml_file(REPO / "catalogue.yaml")
    recipes = [*read_yaml_file(REPO / "recipes.yaml"), *read_yaml_file(REPO / "ssl.yaml")["recipes"]]
    assert [name for name in recipes if not (catalogue.get(name) or {}).get("notes")] == []


def test_ssl_doc_verdicts_block_matches_results():
    page = REPO / "docs" / "ssl.md"
    assert docs.generated_block(page.read_text(), "ssl-verdicts", page) == \
        docs.render_ssl_verdicts(REPO / "docs" / "results"), \
        "docs/ssl.md's verdicts block is stale or was edited by hand: run `python -m smallvision.docs`"


def test_ssl_verdicts_repeat_each_pages_comparisons_and_leave_out_its_baselines():
    """docs/ssl.md's table gives every pretrained recipe of every SSL page once, with the same paired
    differences as the page's *vs baseline* columns, and no row for a `none` baseline; or names it
    below the table as the same runs as the row of a page with more seeds."""
    rendered = docs.render_ssl_verdicts(REPO / "docs" / "results")
    footnote = " ".join(rendered.split("\n\n")[-1].split())
    left_out = {(recipe, study): larger
                for recipe, studies, larger in re.findall(r"`(\w+)` of ([\w, ]+?) \(in (\w+)\)", footnote)
                for study in studies.split(", ")}
    for sidecar in sorted((REPO / "docs" / "results").glob("*.json")):
        data = json.loads(sidecar.read_text())
        if not data.get("ssl"):
            continue
        page = sidecar.with_suffix(".md").read_text()
        for recipe in {row["ssl_recipe"] for row in data["ssl"]["rows"]}:
            ours = [line for line in rendered.splitlines() if f"](results/{data['study']}.md) | `{recipe}` |" in line]
            theirs = next(line for line in page.splitlines() if line.startswith(f"| {recipe} |"))
            if " | none | " in theirs:
                assert ours == [], f"{recipe} is a baseline of {data['study']}"
                continue
            if (recipe, data["study"]) in left_out:  # shown in the larger page's row instead
                larger = left_out[(recipe, data["study"])]
                assert ours == [] and f"](results/{larger}.md) | `{recipe}` |" in rendered, f"{recipe} of {data['study']}"
                continue
            assert len(ours) == 1, f"{recipe} of {data['study']}"
            differences = re.findall(r"[+-]\d\.\d{3} ± \d\.\d{3}", ours[0])
            assert differences and differences == re.findall(r"([+-]\d\.\d{3} ± \d\.\d{3}) (?:above|below|within)", theirs)


def test_a_row_is_left_out_only_for_the_same_runs_with_more_seeds():
    def study(name: str, knn: dict[int, float]) -> dict:
        return {"study": name, "ssl": {"rows": [{"dataset": "d", "ssl_recipe": "simclr", "method": "simclr", "seed": seed,
                                                  "knn20_accuracy": value} for seed, value in knn.items()]}}

    three, five = study("three", {0: 0.2, 1: 0.3, 2: 0.25}), study("five", {0: 0.2, 1: 0.3, 2: 0.25, 3: 0.1, 4: 0.2})
    rerun = study("rerun", {0: 0.2, 1: 0.31, 2: 0.25, 3: 0.1, 4: 0.2, 5: 0.3})  # seed 1 another run
    assert docs.same_runs_elsewhere([three, five, rerun]) == {("three", "d", "simclr"): "five"}
    pooled = study("pooled", {**{s: r["knn20_accuracy"] for s, r in enumerate(five["ssl"]["rows"])}, 5: 0.3, 6: 0.2})
    assert docs.same_runs_elsewhere([three, five, pooled]) == {("three", "d", "simclr"): "pooled",
                                                               ("five", "d", "simclr"): "pooled"}


def test_a_page_without_its_generated_blocks_markers_is_named(tmp_path):
    page = tmp_path / "ssl.md"
    page.write_text("# SSL\n\nno markers here\n")
    with pytest.raises(UserError, match=r"ssl\.md has no block between <!-- ssl-verdicts:start -->"):
        docs.update_block(page, "ssl-verdicts", "| table |")
    assert page.read_text() == "# SSL\n\nno markers here\n"
