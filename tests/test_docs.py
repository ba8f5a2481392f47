"""The README cannot drift from the code: its commands name real parameters and modules, its
results table is what the publisher renders from docs/results, the generated pages match their
data and the recipe files, every published figure names the report and section it is printed in,
and every "best" is chosen on validation."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from smallvision import profile
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
    "~datasets.digits", "launcher=torchrun --nproc_per_node=2", "recipes.yaml:effnet_knn.ks.0=5",
])
def test_override_check_accepts(override):
    assert override_error(override) is None


def test_module_check():
    assert module_error("smallvision.publish") is None
    assert module_error("smallvision.no_such_module")
    assert module_error("smallvision.report")  # a package without __main__


from smallvision.publish import __main__ as publish  # noqa: E402
from smallvision.publish.blocks import generated_block, update_block  # noqa: E402
from smallvision.publish.catalogue import render_recipes  # noqa: E402
from smallvision.publish.headline import render_headline  # noqa: E402
from smallvision.publish.index import render_index  # noqa: E402
from smallvision.publish.model import Arm, Page, Reference, Split, read_page  # noqa: E402
from smallvision.publish.page import render  # noqa: E402
from smallvision.publish.ssl import render_ssl_verdicts  # noqa: E402

RESULTS = REPO / "docs" / "results"
SEEDS = REPO.parent / "shared" / "seeds"


def current_pages() -> dict:
    return {path.stem: read_page(path) for path in sorted(RESULTS.glob("*.json"))}


def archived_pages() -> dict:
    return {path.stem: read_page(path) for path in sorted((RESULTS / "archive").glob("*.json"))}


def test_every_way_back_the_readme_gives_restores_the_outputs_too():
    """`git checkout` of the params files alone leaves the workspace's outputs those of the abandoned
    variant; `dvc checkout` brings back the ones dvc.lock names."""
    text = " ".join(README.read_text().split())
    advice = re.findall(r"`(git checkout [^`]*)`", text)
    assert advice, "README.md no longer says how to go back"
    assert all("&& dvc checkout" in command for command in advice), advice


def test_readme_headline_block_matches_results():
    assert generated_block(README.read_text(), "headline", README) == render_headline(current_pages()), \
        "README.md's results table differs from docs/results/*.json: run `python -m smallvision.publish`"


def test_results_pages_and_their_index_match_their_data():
    current, archived = current_pages(), archived_pages()
    assert archived, "no archived pages (docs/results/archive/*.json)"
    for folder, pages in ((RESULTS, current), (RESULTS / "archive", archived)):
        for name, page in pages.items():
            assert page.track == name
            assert (folder / f"{name}.md").read_text() == render(page), \
                f"{folder / name}.md is stale or was edited by hand: run `python -m smallvision.publish`"
    assert (RESULTS / "README.md").read_text() == render_index(current, archived)
    for name, page in current.items():  # a track's page: its command rebuilds its run, its arms are the track's
        assert page.status == "current" and f"python -m smallvision.profile {name} " in page.command
        declared = yaml.safe_load((REPO / "tracks" / f"{name}.yaml").read_text())
        assert {arm.curve or arm.name for arm in page.arms} <= {*declared.get("arms", {}), *declared.get("ssl_arms", {})}
    for page in archived.values():
        assert page.status == "archived" and (REPO / "tracks" / f"{page.superseded_by}.yaml").exists()


def test_every_link_of_the_results_pages_leads_to_a_file():
    """An archived study answered by a track whose run is not published yet names the track's file,
    not a page that does not exist."""
    for page in [RESULTS / "README.md", *RESULTS.glob("*.md"), *(RESULTS / "archive").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page} links to {target}, which does not exist"


def test_every_current_page_carries_its_trivial_baseline_on_each_test_split():
    for name, page in current_pages().items():
        for dataset in page.splits:
            supervised = page.on_split(dataset, "supervised")
            if supervised:
                assert any(arm.role == "baseline" for arm in supervised), f"{name}: {dataset} has no baseline"


def test_recipes_page_is_up_to_date():
    assert (REPO / "docs" / "recipes.md").read_text() == render_recipes(REPO), \
        "docs/recipes.md is older than recipes.yaml/catalogue.yaml: run `python -m smallvision.publish`"


def test_ssl_doc_verdicts_block_matches_results():
    doc = REPO / "docs" / "ssl.md"
    assert generated_block(doc.read_text(), "ssl-verdicts", doc) == \
        render_ssl_verdicts({**current_pages(), **archived_pages()})


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
    assert "docs/results/README.md" in targets  # the index of every arm
    missing = [target for target in targets if not (REPO / target).exists()]
    assert not missing, missing


def test_every_recipe_has_a_note_in_the_catalogue():
    catalogue = read_yaml_file(REPO / "catalogue.yaml")
    recipes = [*read_yaml_file(REPO / "recipes.yaml"), *read_yaml_file(REPO / "ssl.yaml")["recipes"]]
    assert sorted(name for name in recipes if not (catalogue.get(name) or {}).get("notes")) == []


# ---- published figures: each names the report and section it is printed in, and is the value printed there

def printed_forms(value: float) -> set[str]:
    """How a figure may stand in a report: 0.8363, 83.63%, 99,5% (a decimal comma), 70%."""
    percent = f"{value * 100:.4g}"
    return {f"{value:g}", f"{value:.4f}", f"{percent}%", f"{percent.replace('.', ',')}%", f"{value:.2f}"}


def references() -> list[tuple[str, dict]]:
    catalogue = read_yaml_file(REPO / "catalogue.yaml")
    found = []
    for name, entry in catalogue.items():
        reference = (entry or {}).get("reference") or []
        found += [(name, ref) for ref in (reference if isinstance(reference, list) else [reference])]
    return found


def test_a_reference_without_its_report_and_section_is_refused(tmp_path):
    from smallvision.options.params import load_params
    from tests.conftest import read_yaml, write_params

    path = write_params(tmp_path, read_yaml(REPO / "params.yaml"))
    (tmp_path / "catalogue.yaml").write_text(yaml.safe_dump(
        {"logreg": {"reference": {"report": "004_ddbeaf9e7facf205.txt", "experiment": "logistic regression",
                                  "results": {"cifar10": {"accuracy": 0.3668}}}}}))
    with pytest.raises(UserError, match="catalogue.yaml: logreg.reference.section: Field required"):
        load_params(path).catalogue


@pytest.mark.skipif(not SEEDS.exists(), reason="../shared/seeds (the seed reports) is not here")
@pytest.mark.parametrize("name, reference", references(), ids=[f"{name}-{ref['section']}" for name, ref in references()])
def test_every_published_figure_is_printed_in_its_reports_section(name, reference):
    """The section heading is in the report as printed, and every figure stands in the report in
    one of its printed forms (a figure typed from memory fails here)."""
    text = (SEEDS / reference["report"]).read_text()
    assert reference["section"] in text, f"{name}: no section {reference['section']!r} in {reference['report']}"
    for dataset, figures in reference["results"].items():
        for metric, value in figures.items():
            assert printed_forms(value) & {token.rstrip(".,") for token in re.findall(r"[\d.,]+%?", text)}, \
                f"{name}: {dataset} {metric} {value} is not printed in {reference['report']}"


# ---- choosing on validation, and like for like

def arm(name: str, val: list[float], test: list[float], role: str = "ours", **extra) -> Arm:
    seeds = [str(seed) for seed in range(len(test))]
    per_seed = {"accuracy": dict(zip(seeds, test)), "macro_f1": dict(zip(seeds, test)), "train_seconds": dict.fromkeys(seeds, 1.0)}
    if val:
        per_seed["val_accuracy"] = dict(zip(seeds, val))
    return Arm(name, extra.pop("dataset", "d"), extra.pop("recipe", name), "supervised", role, per_seed=per_seed, **extra)


def synthetic(**changes) -> Page:
    meta = {"date": "2026-12-07 12:00 UTC", "git_commit": "abc1234", "device": "CPU: test, 2 threads", "python": "3.11",
            "libraries": {"torch": "x"}}
    arms = [arm("majority", [0.25, 0.25, 0.25], [0.25, 0.25, 0.25], role="baseline"),
            arm("val_best", [0.92, 0.93, 0.91], [0.80, 0.81, 0.79], parent="test_best"),
            arm("test_best", [0.85, 0.86, 0.84], [0.90, 0.91, 0.89],
                references=[Reference("002_b8e900005de96b4c.txt", "2.3 Third Experiment", "the report's head", "accuracy",
                                      0.8363)], role="seed"),
            arm("other_split", [0.99, 0.99, 0.99], [0.5, 0.5, 0.5], dataset="e")]
    page = Page("toy", "a toy track", "current", "python -m smallvision.profile toy --seeds 0 1 2", meta, 0.95,
                {"d": Split("d", None, 4, 30, 10, 10, "split1"), "e": Split("e", None, 4, 30, 10, 10, "split2")}, arms,
                data={"same": False, "short": "a copy at 128 px"}, headline=[{"dataset": "d"}])
    for key, value in changes.items():
        setattr(page, key, value)
    return page


def test_the_headline_names_the_validation_best_even_where_another_arm_is_better_on_test():
    page = synthetic()
    assert page.chosen("d").name == "val_best"  # validation chooses; test_best is higher on test
    headline = render_headline({"toy": page})
    assert "`val_best` 0.800" in headline and "test_best` 0.9" not in headline
    row = next(line for line in headline.splitlines() if line.startswith("| [toy]"))
    assert row.endswith("| 2 |")  # val_best and test_best met split1's test images; the baseline is not an arm compared
    assert "0.8363" in row and "0.250" in row  # the report's figure of the same measure, and the trivial baseline
    markdown = render(page)
    assert "Chosen on validation (the highest mean validation accuracy of 2 arms tested on these images): **`val_best`**" \
        in markdown
    assert "**chosen on validation**" in next(line for line in render_index({"toy": page}, {}).splitlines()
                                               if "`val_best`" in line)


def test_a_split_without_validation_figures_chooses_no_arm():
    page = synthetic()
    for candidate in page.arms:
        candidate.per_seed.pop("val_accuracy", None)
    assert page.chosen("d") is None
    assert "no arm chosen (no validation figure)" in render_headline({"toy": page})
    assert "No arm was chosen: none of the 2 has a validation figure" in render(page)


def test_a_headline_row_says_whether_its_data_is_the_reports_or_a_stand_in():
    assert "| stand-in: a copy at 128 px |" in render_headline({"toy": synthetic()})
    assert "| same data |" in render_headline({"toy": synthetic(data={"same": True})})


def test_a_published_figure_of_another_measure_is_never_set_beside_ours_as_the_same():
    page = synthetic()
    page.arm("test_best").references[0].metric = "report_f1"
    row = next(line for line in render_headline({"toy": page}).splitlines() if line.startswith("| [toy]"))
    assert "none of this measure" in row
    assert "(not this column's measure)" in render(page)


def test_a_page_pairs_each_arm_with_its_parent_over_the_seeds_both_ran():
    markdown = render(synthetic())
    row = next(line for line in markdown.splitlines() if line.startswith("| **`val_best`**"))
    assert "-0.100 (identical over seeds) (test_best)" in row  # every seed 0.10 below its parent: no spread


def test_compare_sets_one_arm_of_a_page_against_another(tmp_path, monkeypatch):
    folder = tmp_path / "docs" / "results"
    folder.mkdir(parents=True)
    (folder / "toy.json").write_text(synthetic().to_json())
    monkeypatch.chdir(tmp_path)
    text = publish.compare_text("toy:val_best", "toy:test_best")
    assert "accuracy: -0.100 (identical over seeds) (paired, n=3)" in text
    with pytest.raises(UserError, match="no arm 'nope'"):
        publish.compare_text("toy:nope", "toy:val_best")


def test_a_page_round_trips_through_its_json():
    page = synthetic()
    assert Page.from_dict(json.loads(page.to_json())) == page


def test_a_page_without_its_generated_blocks_markers_is_named(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("no markers here\n")
    with pytest.raises(UserError, match="has no block between <!-- headline:start -->"):
        update_block(page, "headline", "x")


def test_cpu_identity_names_the_instruction_set_torch_runs_on():
    from smallvision.report.metadata import cpu_identity

    assert "torch kernels " in cpu_identity()


# ---- a page from a run: its command must rebuild the run's params.yaml

def test_a_results_page_needs_params_its_command_rebuilds(tmp_path, monkeypatch):
    from smallvision.publish.collect import check_params_reproduce
    from tests.conftest import copy_repo

    repo = copy_repo(tmp_path / "repo")  # a committed copy
    monkeypatch.chdir(repo)
    profile.apply(profile.read_track("default", seeds=[0]), repo / "params.yaml")
    check_params_reproduce("default", [0], repo)  # what `profile default --seeds 0` writes: accepted
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text().replace("launcher: python", "launcher: python3"))
    with pytest.raises(UserError, match="is not what `python -m smallvision.profile default --seeds 0` writes"):
        check_params_reproduce("default", [0], repo)
    # a run of some arms only: its page's command names them, and the full command does not rebuild it
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text().replace("launcher: python3", "launcher: python"))
    profile.apply(profile.read_track("default", seeds=[0], arms=["majority", "logreg"]), repo / "params.yaml")
    check_params_reproduce("default", [0], repo, ["majority", "logreg"])
    with pytest.raises(UserError, match="is not what `python -m smallvision.profile default --seeds 0` writes"):
        check_params_reproduce("default", [0], repo)
