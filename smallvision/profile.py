"""Switch params.yaml to a study: the sources, datasets and runs of one benchmark.

  python -m smallvision.profile --list       # each study: its runs and estimated times
  python -m smallvision.profile NAME         # studies/NAME.yaml; then `dvc repro`
  python -m smallvision.profile NAME --seeds 0 1 2
  python -m smallvision.profile default --folder /path/to/images [--dataset pets] [--image-size 64]

A study names, per dataset, the recipes that run on it and the seeds (`seeds` for all, or
{recipes: [...], seeds: [...]} for one dataset; its SSL recipes pretrain once per `seeds`);
applying it rewrites the `sources`,
`datasets`, `runs` (and `ssl`) sections of params.yaml, keeping the comments of the others
(`git checkout params.yaml` goes back). `$VAR` in a value is taken from the environment (a
folder on this machine); `$VAR|fallback` uses the fallback when VAR is unset, e.g.
`$POKEMON150|data/raw/pokemon150` reads a local copy instead of the Kaggle download. Sources
that no dataset reads are left out, so a study on local folders fetches nothing."""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
from pathlib import Path

import yaml

from smallvision.config import NAME_PATTERN, PARAMS_FILE, RAW_DIR, EvaluateConfig, load_params, run_name
from smallvision.errors import UserError, exits_cleanly
from smallvision.registry import did_you_mean

STUDIES = Path("studies")
WITH_FALLBACK = re.compile(r"\$(\w+)\|(.+)")  # `$VAR|fallback`: VAR's folder where it is set, else the fallback
SECTIONS = ("sources", "datasets", "ssl")
DVC_WIDTH = 80  # the line width of DVC's YAML writer: written as it would, a -S rewrite changes one line
STUDY_KEYS = {"about", "estimate", "seeds", "sources", "datasets", "runs", "ssl", "evaluate"}
# The evaluation settings that are a study's design: each study sets them, to its value or the
# default, so that a study run after another does not inherit them.
STUDY_EVALUATE_KEYS = ("test_size_scale",)


def read_study(name: str, seeds: list[int] | None = None) -> dict:
    path = STUDIES / f"{name}.yaml"
    known = sorted(p.stem for p in STUDIES.glob("*.yaml"))
    if not path.is_file():
        raise UserError(f"no study '{name}' in {STUDIES}/{did_you_mean(name, known)}; known: {', '.join(known)}")
    study = yaml.safe_load(path.read_text()) or {}
    unknown = set(study) - STUDY_KEYS
    if unknown:
        raise UserError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(STUDY_KEYS))}")
    unknown = set(study.get("evaluate") or {}) - set(STUDY_EVALUATE_KEYS)
    if unknown:
        raise UserError(f"{path}: evaluate.{', evaluate.'.join(sorted(unknown))} is not a study's to set; "
                        f"a study may set evaluate.{', evaluate.'.join(STUDY_EVALUATE_KEYS)}")
    study = expand(study, name)
    if seeds is not None:
        study["seeds"] = seeds
    return study


def on_folder(study: dict, folder: str, name: str | None, image_size: int | None) -> dict:
    """The study's recipes on one image folder instead of its datasets (`--folder`)."""
    name = name or re.sub(r"\W", "_", Path(folder).resolve().name) or "images"
    if not NAME_PATTERN.match(name):
        raise UserError(f"--dataset {name}: names may hold only letters, digits and '_' (they become stage names)")
    recipes = []
    for chosen in (study.get("runs") or {}).values():
        recipes += chosen if isinstance(chosen, list) else chosen["recipes"]
    dataset = {"root": str(Path(folder).resolve())} | ({"image_size": image_size} if image_size else {})
    return {**study, "datasets": {name: dataset}, "runs": {name: list(dict.fromkeys(recipes))}}


def expand(value, study: str):
    """$VAR from the environment, everywhere in the study; `$VAR|fallback` when VAR may be unset."""
    if isinstance(value, dict):
        return {key: expand(item, study) for key, item in value.items()}
    if isinstance(value, list):
        return [expand(item, study) for item in value]
    if isinstance(value, str):
        with_fallback = WITH_FALLBACK.fullmatch(value)
        if with_fallback:
            return os.environ.get(with_fallback[1], with_fallback[2])
        for name in re.findall(r"\$(\w+)", value):
            if name not in os.environ:
                raise UserError(f"study {study} needs ${name}: set it to a folder on this machine")
        return os.path.expandvars(value)
    return value


def unset_fallbacks(value) -> list[tuple[str, str]]:
    """(VAR, fallback) of each `$VAR|fallback` in a study as written whose VAR this shell lacks:
    where `expand` takes the fallback."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [pair for item in value for pair in unset_fallbacks(item)]
    with_fallback = WITH_FALLBACK.fullmatch(value) if isinstance(value, str) else None
    return [(with_fallback[1], with_fallback[2])] if with_fallback and with_fallback[1] not in os.environ else []


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
    """The sources some dataset reads (its root, pokeapi or composite backgrounds under data/raw),
    and the offline digits, which keep data/raw (a dependency of every prepare) in existence."""
    read = set()
    for cfg in datasets.values():
        for path in (cfg.get("root"), cfg.get("pokeapi"), (cfg.get("composite") or {}).get("backgrounds")):
            parts = Path(str(path)).parts if path else ()
            if parts[:2] == Path(RAW_DIR).parts and len(parts) > 2:
                read.add(parts[2])
    return {name: source for name, source in sources.items() if name in read or source.get("kind") == "sklearn_digits"}


def rewritten(study: dict, params_text: str, recipes_file: Path) -> str:
    """`params_text` (a params.yaml) with the study's sections in place of its own, the others
    kept as they are, comments included."""
    from ruamel.yaml import YAML

    editor = YAML()  # round-trip: keeps the comments of the sections left alone
    editor.width = DVC_WIDTH
    params = editor.load(params_text)
    recipes = yaml.safe_load(recipes_file.read_text())
    runs = run_entries(study, {name: (cfg or {}).get("method", "torch") for name, cfg in recipes.items()})
    study = {**study, "runs": runs,
             "sources": used_sources(study.get("sources") or {}, study.get("datasets") or {})}
    if study.get("ssl"):
        study["ssl"] = {**study["ssl"], "seeds": study.get("seeds", [0])}
    for section in ("runs", *SECTIONS):
        if section in study and as_plain(params.get(section)) != study[section]:
            params[section] = styled(study[section])
    for key in STUDY_EVALUATE_KEYS:
        default = EvaluateConfig.model_fields[key].default
        value = (study.get("evaluate") or {}).get(key, default)
        if (params.get("evaluate") or {}).get(key, default) != value:
            params.setdefault("evaluate", {})[key] = value
    out = io.StringIO()
    editor.dump(params, out)
    return out.getvalue()


def apply(study: dict, params_file: Path = Path(PARAMS_FILE)) -> None:
    tmp = params_file.with_suffix(".tmp")
    tmp.write_text(rewritten(study, params_file.read_text(), params_file.parent / "recipes.yaml"))
    try:
        load_params(tmp)  # the result must be valid before it replaces params.yaml
    except UserError:
        tmp.unlink()
        raise
    tmp.replace(params_file)


def as_plain(value):
    return json.loads(json.dumps(value)) if value is not None else None


def styled(value, key: str = "", depth: int = 0):
    """`value` as ruamel writes it: a mapping of plain values on one line when DVC's writer
    keeps it on one (so a later `dvc exp run -S` rewrite changes only the edited line), else in
    block style. `key` and `depth` place it as it will stand in params.yaml."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    if not isinstance(value, dict):
        return value
    node = CommentedMap((name, styled(item, name, depth + 1)) for name, item in value.items())
    if depth and all(not isinstance(item, dict) for item in value.values()):
        node.fa.set_flow_style()
        placed = {key: node}
        for _ in range(depth - 1):
            placed = {"p": placed}
        writer, out = YAML(), io.StringIO()
        writer.width = DVC_WIDTH
        writer.dump(placed, out)
        if len(out.getvalue().splitlines()) > depth:
            node.fa.set_block_style()
    return node


def listing() -> list[str]:
    """One line a study: its supervised runs, its SSL pretrainings (recipe x dataset x seed), the
    estimates it states and what it is about."""
    paths = sorted(STUDIES.glob("*.yaml"))
    width = max(len("study"), *(len(path.stem) for path in paths))
    lines = [f"{'study':<{width}} {'runs':>5} {'ssl':>4}  {'2-core CPU':<18} {'one GPU':<14} about"]
    for path in paths:
        study = yaml.safe_load(path.read_text()) or {}
        count = sum(len(chosen if isinstance(chosen, list) else chosen["recipes"])
                    * len(study.get("seeds", [0]) if isinstance(chosen, list) else chosen.get("seeds", study.get("seeds", [0])))
                    for chosen in (study.get("runs") or {}).values())
        pretrainings = len((study.get("ssl") or {}).get("methods") or []) * len(study.get("datasets") or {}) \
            * len(study.get("seeds", [0]))
        estimate = study.get("estimate") or {}
        lines.append(f"{path.stem:<{width}} {count:>5} {pretrainings:>4}  {estimate.get('cpu', '?'):<18} "
                     f"{estimate.get('gpu', '?'):<14} {study.get('about', '')}")
    return lines


@exits_cleanly
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m smallvision.profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?")
    parser.add_argument("--list", action="store_true", help="each study's runs and estimated times")
    parser.add_argument("--seeds", type=int, nargs="+", help="replace the study's seeds (its runs' and SSL recipes')")
    parser.add_argument("--folder", help="run the study's recipes on this image folder instead of its datasets")
    parser.add_argument("--dataset", help="the folder's dataset name (default: the folder's own name)")
    parser.add_argument("--image-size", type=int, help="the folder's prepared image size (default: prepare's)")
    args = parser.parse_args(argv)
    if args.list or not args.name:
        print("\n".join(listing()))
        return
    if args.seeds is not None and any(seed < 0 for seed in args.seeds):
        raise UserError("--seeds takes non-negative integers, e.g. --seeds 0 1 2")
    study = read_study(args.name, args.seeds)
    if args.folder:
        if not Path(args.folder).is_dir():
            raise UserError(f"--folder {args.folder}: no such folder; give a folder of <class>/<image> files")
        study = on_folder(study, args.folder, args.dataset, args.image_size)
    apply(study)
    params = load_params()
    print(f"params.yaml now runs study {args.name}: {len(params.runs)} run(s) on {len(params.run_datasets)} "
          f"dataset(s); run `dvc repro`", file=sys.stderr)


if __name__ == "__main__":
    main()
