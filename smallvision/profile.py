"""Switch params.yaml to a study: the sources, datasets and runs of one benchmark.

  python -m smallvision.profile --list       # each study: its runs and estimated times
  python -m smallvision.profile NAME         # studies/NAME.yaml; then `dvc repro`
  python -m smallvision.profile NAME --seeds 0 1 2

A study names, per dataset, the recipes that run on it and the seeds (`seeds` for all, or
{recipes: [...], seeds: [...]} for one dataset); applying it rewrites the `sources`,
`datasets`, `runs` (and `ssl`) sections of params.yaml, keeping the comments of the others
(`git checkout params.yaml` goes back). `$VAR` in a value is taken from the environment (a
folder on this machine); `$VAR|fallback` uses the fallback when VAR is unset, e.g.
`$POKEMON150|data/raw/pokemon150` reads a local copy instead of the Kaggle download. Sources
that no dataset reads are left out, so a study on local folders fetches nothing."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import yaml

from smallvision.config import PARAMS_FILE, RAW_DIR, load_params, run_name
from smallvision.errors import UserError, exits_cleanly
from smallvision.registry import did_you_mean

STUDIES = Path("studies")
SECTIONS = ("sources", "datasets", "ssl")
STUDY_KEYS = {"about", "estimate", "seeds", "sources", "datasets", "runs", "ssl"}


def read_study(name: str, seeds: list[int] | None = None) -> dict:
    path = STUDIES / f"{name}.yaml"
    known = sorted(p.stem for p in STUDIES.glob("*.yaml"))
    if not path.is_file():
        raise UserError(f"no study '{name}' in {STUDIES}/{did_you_mean(name, known)}; known: {', '.join(known)}")
    study = yaml.safe_load(path.read_text()) or {}
    unknown = set(study) - STUDY_KEYS
    if unknown:
        raise UserError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(STUDY_KEYS))}")
    study = expand(study, name)
    if seeds is not None:
        study["seeds"] = seeds
    return study


def expand(value, study: str):
    """$VAR from the environment, everywhere in the study; `$VAR|fallback` when VAR may be unset."""
    if isinstance(value, dict):
        return {key: expand(item, study) for key, item in value.items()}
    if isinstance(value, list):
        return [expand(item, study) for item in value]
    if isinstance(value, str):
        with_fallback = re.fullmatch(r"\$(\w+)\|(.+)", value)
        if with_fallback:
            return os.environ.get(with_fallback[1], with_fallback[2])
        for name in re.findall(r"\$(\w+)", value):
            if name not in os.environ:
                raise UserError(f"study {study} needs ${name}: set it to a folder on this machine")
        return os.path.expandvars(value)
    return value


def run_entries(study: dict, methods: dict[str, str]) -> dict[str, dict]:
    """The `runs` section: one entry per dataset x recipe x seed. `methods` maps each recipe
    to its method, which says whose defaults it takes."""
    runs = {}
    for dataset, chosen in (study.get("runs") or {}).items():
        recipes, seeds = (chosen, study.get("seeds", [0])) if isinstance(chosen, list) else \
            (chosen["recipes"], chosen.get("seeds", study.get("seeds", [0])))
        for recipe in recipes:
            if recipe not in methods:
                raise UserError(f"study: runs.{dataset} names recipe '{recipe}', which is not in recipes.yaml"
                                f"{did_you_mean(recipe, methods)}")
            for seed in seeds:
                runs[run_name(dataset, recipe, seed)] = {
                    "dataset": dataset, "recipe": recipe, "seed": seed,
                    "defaults": "sklearn" if methods[recipe] == "logreg" else "train"}
    return runs


def used_sources(sources: dict, datasets: dict) -> dict:
    """The sources some dataset reads (its root, pokeapi or composite backgrounds under data/raw)."""
    read = set()
    for cfg in datasets.values():
        for path in (cfg.get("root"), cfg.get("pokeapi"), (cfg.get("composite") or {}).get("backgrounds")):
            parts = Path(str(path)).parts if path else ()
            if parts[:2] == Path(RAW_DIR).parts and len(parts) > 2:
                read.add(parts[2])
    return {name: source for name, source in sources.items() if name in read}


def apply(study: dict, params_file: Path = Path(PARAMS_FILE)) -> None:
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    editor = YAML()  # round-trip: keeps the comments of the sections left alone
    editor.width = 110
    params = editor.load(params_file.read_text())
    recipes = yaml.safe_load((params_file.parent / "recipes.yaml").read_text())
    runs = run_entries(study, {name: (cfg or {}).get("method", "torch") for name, cfg in recipes.items()})
    params["runs"] = CommentedMap()
    for key, entry in runs.items():  # one flow mapping a line, as DVC's -S rewrite keeps them
        params["runs"][key] = CommentedMap(entry)
        params["runs"][key].fa.set_flow_style()
    study = {**study, "sources": used_sources(study.get("sources") or {}, study.get("datasets") or {})}
    for section in SECTIONS:
        if section in study:
            params[section] = study[section]
    tmp = params_file.with_suffix(".tmp")
    with open(tmp, "w") as handle:
        editor.dump(params, handle)
    try:
        load_params(tmp)  # the result must be valid before it replaces params.yaml
    except UserError:
        tmp.unlink()
        raise
    tmp.replace(params_file)


def listing() -> list[str]:
    lines = [f"{'study':<16} {'runs':>5}  {'2-core CPU':<14} {'one GPU':<14} about"]
    for path in sorted(STUDIES.glob("*.yaml")):
        study = yaml.safe_load(path.read_text()) or {}
        count = sum(len(chosen if isinstance(chosen, list) else chosen["recipes"])
                    * len(study.get("seeds", [0]) if isinstance(chosen, list) else chosen.get("seeds", study.get("seeds", [0])))
                    for chosen in (study.get("runs") or {}).values())
        estimate = study.get("estimate") or {}
        lines.append(f"{path.stem:<16} {count:>5}  {estimate.get('cpu', '?'):<14} {estimate.get('gpu', '?'):<14} "
                     f"{study.get('about', '')}")
    return lines


@exits_cleanly
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m smallvision.profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?")
    parser.add_argument("--list", action="store_true", help="each study's runs and estimated times")
    parser.add_argument("--seeds", type=int, nargs="+", help="replace the study's seeds")
    args = parser.parse_args(argv)
    if args.list or not args.name:
        print("\n".join(listing()))
        return
    if args.seeds is not None and any(seed < 0 for seed in args.seeds):
        raise UserError("--seeds takes non-negative integers, e.g. --seeds 0 1 2")
    apply(read_study(args.name, args.seeds))
    params = load_params()
    print(f"params.yaml now runs study {args.name}: {len(params.runs)} run(s) on {len(params.run_datasets)} "
          f"dataset(s); run `dvc repro`", file=sys.stderr)


if __name__ == "__main__":
    main()
