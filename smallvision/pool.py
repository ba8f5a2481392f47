"""One results page from the seeds of several committed SSL pages: seeds run in separate sessions
(a study's seeds 0-4 one day, 5-9 another) add up to one paired comparison over all of them.

  python -m smallvision.docs pool NAME --from STUDY STUDY ...   # docs/results/NAME.md and .json

Seeds pool only when they are runs of the same thing: the pages ran on the same device with the
same libraries and test splits of the same size, and at their commits the SSL stages' code
(dvc.yaml's deps of prepare, pretrain and ssl_evaluate), ssl.yaml's settings of the pooled
recipes, params.yaml's `prepare`, `train` and `evaluate` and each study's datasets agree. A seed
that two pages both ran (a shared baseline) is taken once, and only when its figures agree on
both. A page whose run had uncommitted changes to any of that code or settings (its metadata
lists them) is refused. Pooled figures come from the pages' per-seed rows, never typed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from smallvision.core.errors import UserError

SSL_STAGES = ("prepare", "pretrain", "ssl_evaluate")
PARAMS_SECTIONS = ("prepare", "train", "evaluate")  # params.yaml's keys that those stages read
SAME_RUN = ("device", "python", "libraries")  # figures are CPU- and library-dependent


def read_pages(sources: list[str], folder: Path) -> dict[str, dict]:
    from smallvision.docs import committed_studies

    if len(set(sources)) < 2:
        raise UserError(f"pool needs at least two different results pages (got {', '.join(sources) or 'none'})")
    committed, pages = committed_studies(folder), {}
    for study in sources:
        path = folder / f"{study}.json"
        if study not in committed:
            raise UserError(f"{path} not found: pool reads committed results pages; known: {', '.join(committed)}")
        data = committed[study]
        if not data.get("ssl"):
            raise UserError(f"{path} has no self-supervised evaluations: pool adds up the seeds of SSL studies")
        if data.get("pooled_from"):
            raise UserError(f"{path} is itself pooled: pool its sources instead")
        pages[study] = data
    return pages


def agreed(pages: dict[str, dict], what: str, value_of) -> object:
    """The value every page has for `what`, else a UserError naming two pages that differ."""
    (first, value), *others = ((study, value_of(data)) for study, data in pages.items())
    for study, other in others:
        if other != value:
            raise UserError(f"{first} and {study} differ in {what} ({value!r} vs {other!r}): their seeds do not pool")
    return value


TIMINGS = ("_seconds", "_per_second")  # a rerun of the same run takes other times


def differing_figures(row: dict, other: dict) -> list[str]:
    """The columns but timings in which two runs' rows differ: none for the same run."""
    return sorted(column for column in set(row) | set(other)
                  if not column.endswith(TIMINGS) and row.get(column) != other.get(column))


def pooled_rows(pages: dict[str, dict]) -> list[dict]:
    """The pages' per-seed SSL rows, each (dataset, recipe, seed) once: a seed two pages share must
    have given the same figures on both (the runs are deterministic), else they are different runs."""
    rows: dict[tuple, tuple[str, dict]] = {}
    test_images: dict[str, tuple[str, int]] = {}  # a dataset's test split, the one seen first
    for study, data in pages.items():
        for row in data["ssl"]["rows"]:
            first, images = test_images.setdefault(row["dataset"], (study, row["test_images"]))
            if row["test_images"] != images:
                raise UserError(f"{row['dataset']}'s test split has {images} images in {first} and "
                                f"{row['test_images']} in {study}: not the same data, so the pages do not pool")
            key = (row["dataset"], row["ssl_recipe"], row["seed"])
            if key not in rows:
                rows[key] = (study, row)
                continue
            first, kept = rows[key]
            differ = differing_figures(row, kept)
            if differ:
                raise UserError(f"{key[1]} seed {key[2]} on {key[0]} is in {first} and {study} with different "
                                f"{', '.join(differ)}: not the same run, so the pages do not pool")
    return [row for _, (_, row) in sorted(rows.items(), key=lambda item: (item[0][0], item[0][1], item[0][2]))]


def commit_of(study: str, data: dict, repo: Path) -> str:
    commit = data["metadata"]["git_commit"].split()[0]
    if git(repo, "cat-file", "-t", f"{commit}^{{commit}}", check=False) != "commit":
        raise UserError(f"commit {commit} of {study}'s run is not in {repo}'s history: pool in a full clone")
    return commit


def git(repo: Path, *args: str, check: bool = True) -> str:
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    if check and result.returncode:
        raise UserError(f"`git {' '.join(args)}` failed in {repo}: {result.stderr.strip()}")
    return result.stdout.strip()


def yaml_at(repo: Path, commit: str, path: str) -> dict:
    return yaml.safe_load(git(repo, "show", f"{commit}:{path}")) or {}


def ssl_code(repo: Path, commit: str) -> list[str]:
    """The files and folders of code that the SSL stages depend on, by dvc.yaml at `commit`."""
    stages = yaml_at(repo, commit, "dvc.yaml")["stages"]
    return sorted({dep for stage in SSL_STAGES for dep in stages[stage].get("deps", [])
                   if "${" not in dep and dep.split("/")[0] in ("stages", "smallvision")})


def run_inputs(repo: Path, commit: str, study: str, datasets: set[str], recipes: set[str]) -> dict:
    """What the pooled recipes' SSL stages read at `commit`, but for code: settings by name."""
    ssl = yaml_at(repo, commit, "ssl.yaml")
    params = yaml_at(repo, commit, "params.yaml")
    study_datasets = yaml_at(repo, commit, f"studies/{study}.yaml").get("datasets") or {}
    return {"ssl.yaml pretrain": ssl.get("pretrain"), "ssl.yaml evaluate": ssl.get("evaluate"),
            **{f"ssl.yaml recipes.{name}": ssl["recipes"].get(name) for name in sorted(recipes)},
            **{f"params.yaml {section}": params.get(section) for section in PARAMS_SECTIONS},
            **{f"the study's datasets.{name}": study_datasets.get(name) for name in sorted(datasets)}}


def check_nothing_uncommitted_was_read(study: str, data: dict, repo: Path, commit: str) -> None:
    """Refuses a page whose run had uncommitted changes to what the SSL stages read: its commit
    does not hold the code or settings its seeds ran with. Pages from before the metadata listed
    such files (no `uncommitted` key) are checked at their commit only."""
    read = [*ssl_code(repo, commit), "ssl.yaml", f"studies/{study}.yaml"]
    touched = [path for path in data["metadata"].get("uncommitted") or []
               if any(path == what or path.startswith(what.rstrip("/") + "/") for what in read)]
    if touched:
        raise UserError(f"{study}'s run had uncommitted changes to {', '.join(touched)}, which the SSL stages read: "
                        f"its commit {commit} does not hold what its seeds ran; rerun it from a clean checkout")


def check_same_inputs(pages: dict[str, dict], rows: list[dict], repo: Path) -> None:
    """Refuses pages whose runs had different code or settings at their commits, or uncommitted
    changes to them (see the module)."""
    datasets, recipes = {row["dataset"] for row in rows}, {row["ssl_recipe"] for row in rows}
    commits = {study: commit_of(study, data, repo) for study, data in pages.items()}
    for study, data in pages.items():
        check_nothing_uncommitted_was_read(study, data, repo, commits[study])
    (first, base), *others = commits.items()
    base_inputs = run_inputs(repo, base, first, datasets, recipes)
    for study, commit in others:
        changed = git(repo, "diff", "--name-only", base, commit, "--", *ssl_code(repo, base), *ssl_code(repo, commit))
        if changed:
            raise UserError(f"the SSL stages' code differs between {first} ({base}) and {study} ({commit}): "
                            f"{', '.join(changed.splitlines())}; their seeds are runs of other code and do not pool")
        inputs = run_inputs(repo, commit, study, datasets, recipes)
        differ = [key for key in base_inputs if inputs[key] != base_inputs[key]]
        if differ:
            raise UserError(f"{first} ({base}) and {study} ({commit}) ran with different {', '.join(differ)}: "
                            "their seeds do not pool")


def pooled_results(name: str, sources: list[str], folder: Path, repo: Path = Path(".")) -> dict:
    """The sidecar of a pooled page: its sources (study, commit, date, seeds), the runs' common
    device and libraries, and the pooled per-seed rows."""
    from smallvision.docs import REGENERATE

    pages = read_pages(sources, folder)
    confidence = agreed(pages, "confidence", lambda data: data["confidence"])
    ks = agreed(pages, "kNN's k", lambda data: data["ssl"]["knn_k"])
    common = {key: agreed(pages, key, lambda data, key=key: data["metadata"][key]) for key in SAME_RUN}
    recorded = {study: data for study, data in pages.items() if data["metadata"].get("cpu")}
    if recorded:  # a page from before the CPU's identity was recorded pools on its label and shared seeds alone
        common["cpu"] = agreed(recorded, "CPU", lambda data: data["metadata"]["cpu"])
    rows = pooled_rows(pages)
    check_same_inputs(pages, rows, repo)
    seed_figures = {}
    for data in pages.values():
        seed_figures.update(data["ssl"].get("seed_figures") or {})
    return {"study": name, "command": f"{REGENERATE} pool {name} --from {' '.join(pages)}", "confidence": confidence,
            "pooled_from": [{"study": study, "commit": data["metadata"]["git_commit"], "date": data["metadata"]["date"],
                             "seeds": sorted({row["seed"] for row in data["ssl"]["rows"]})}
                            for study, data in pages.items()],
            "metadata": {"date": max(data["metadata"]["date"] for data in pages.values()), **common},
            "datasets": {}, "ssl": {"knn_k": ks, "rows": rows, "seed_figures": seed_figures}}


def pooled_header(data: dict) -> list[str]:
    """The top of a pooled page: what it pools and how to redo it."""
    from smallvision.docs import device_text

    meta = data["metadata"]
    libraries = ", ".join(f"{k} {v}" for k, v in meta["libraries"].items())
    lines = [f"# Results: `{data['study']}`, pooled", "",
             f"Generated by `{data['command']}` from the per-seed rows of the committed pages below, not edited by "
             "hand. Their runs were checked to be the same recipes, settings and SSL code at their commits; a page "
             "that lists its run's uncommitted files was checked to have none of those among them (a page that does "
             "not, at its commit only); a seed two pages share is taken once, its "
             "figures being the same on both. To reproduce, rerun each page's command, then this one.", "",
             "| page | seeds | commit | date |", "|---|---|---|---|"]
    for source in data["pooled_from"]:
        lines.append(f"| [{source['study']}]({source['study']}.md) | {', '.join(map(str, source['seeds']))} | "
                     f"{source['commit']} | {source['date']} |")
    return lines + ["", f"- device: {device_text(meta)}", f"- python {meta['python']}; {libraries}", ""]
