"""Switch params.yaml to a track: the sources, datasets and arms of one benchmark.

  python -m smallvision.profile --list       # each track: its arms, runs and estimated times
  python -m smallvision.profile NAME         # tracks/NAME.yaml; then `dvc repro`
  python -m smallvision.profile NAME --seeds 0 1 2 --arms a b   # other seeds; only these arms
  python -m smallvision.profile default --folder /path/to/images [--dataset pets] [--image-size 64]

A track (one per seed report, and `default`) names its datasets and its arms: each arm a recipe
(of recipes.yaml, or of ssl.yaml under `ssl_arms`) with a few keys overridden (`set`), the
dataset it runs on, its role (baseline, seed experiment, ours), its question and the arm it
varies (`parent`). Applying a track writes one run per arm and seed into the `runs` (and
`ssl.runs`) section of params.yaml, and its `sources` and `datasets`, keeping the comments of
the others (`git checkout params.yaml` goes back). `$VAR` in a value is taken from the
environment (a folder on this machine); `$VAR|fallback` uses the fallback when VAR is unset,
e.g. `$POKEMON150|data/raw/pokemon150` reads a local copy instead of the Kaggle download.
Sources that no dataset reads are left out, so a track on local folders fetches nothing."""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
from pathlib import Path

import yaml

from smallvision.core.errors import UserError, exits_cleanly
from smallvision.core.registry import did_you_mean
from smallvision.options.params import (
    NAME_PATTERN,
    PARAMS_FILE,
    RAW_DIR,
    EvaluateConfig,
    load_params,
    run_name,
)
from smallvision.options.recipes import defaults_block

TRACKS = Path("tracks")
WITH_FALLBACK = re.compile(r"\$(\w+)\|(.+)")  # `$VAR|fallback`: VAR's folder where it is set, else the fallback
DVC_WIDTH = 80  # the line width of DVC's YAML writer: written as it would, a -S rewrite changes one line
TRACK_KEYS = {"about", "report", "data", "headline", "estimate", "seeds", "sources", "datasets", "arms", "ssl_arms",
              "evaluate"}
ARM_KEYS = {"dataset", "recipe", "set", "role", "parent", "question", "differs", "seeds", "per_class"}
ROLES = ("baseline", "seed", "ours")  # the trivial baseline, a seed report's experiment, our own
# The evaluation settings that are a track's design: each track sets them, to its value or the
# default, so that a track applied after another does not inherit them.
TRACK_EVALUATE_KEYS = ("test_size_scale", "retrieval_ks")


def read_track(name: str, seeds: list[int] | None = None, arms: list[str] | None = None) -> dict:
    """tracks/NAME.yaml, its $VARs expanded, with `seeds` in place of its own and only `arms` (all
    when None)."""
    path = TRACKS / f"{name}.yaml"
    known = sorted(p.stem for p in TRACKS.glob("*.yaml"))
    if not path.is_file():
        raise UserError(f"no track '{name}' in {TRACKS}/{did_you_mean(name, known)}; known: {', '.join(known)}")
    track = yaml.safe_load(path.read_text()) or {}
    check_track(track, path)
    track = expand(track, name)
    if seeds is not None:
        track["seeds"] = seeds
    if arms is not None:
        every = track_arms(track)
        for arm in arms:
            if arm not in every:
                raise UserError(f"--arms {arm}: {path} has no arm '{arm}'{did_you_mean(arm, every)}; "
                                f"its arms: {', '.join(every)}")
        for section in ("arms", "ssl_arms"):
            track[section] = {key: arm for key, arm in (track.get(section) or {}).items() if key in arms}
    return track


def track_arms(track: dict) -> dict[str, dict]:
    """Every arm of a track by name, supervised and SSL."""
    return {**(track.get("arms") or {}), **(track.get("ssl_arms") or {})}


def check_track(track: dict, path: Path) -> None:
    """Every key known; every arm names its dataset, recipe and role, and a parent that is an arm."""
    unknown = set(track) - TRACK_KEYS
    if unknown:
        raise UserError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(TRACK_KEYS))}")
    unknown = set(track.get("evaluate") or {}) - set(TRACK_EVALUATE_KEYS)
    if unknown:
        raise UserError(f"{path}: evaluate.{', evaluate.'.join(sorted(unknown))} is not a track's to set; "
                        f"a track may set evaluate.{', evaluate.'.join(TRACK_EVALUATE_KEYS)}")
    every = track_arms(track)
    for section in ("arms", "ssl_arms"):
        for name, arm in (track.get(section) or {}).items():
            where = f"{path}: {section}.{name}"
            if not isinstance(arm, dict):
                raise UserError(f"{where}: an arm is a mapping (dataset, recipe, role, ...)")
            unknown = set(arm) - ARM_KEYS
            if unknown:
                raise UserError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(ARM_KEYS))}")
            for key in ("dataset", "recipe", "role"):
                if key not in arm:
                    raise UserError(f"{where}: `{key}` is missing")
            if arm["role"] not in ROLES:
                raise UserError(f"{where}: role {arm['role']!r}; one of {', '.join(ROLES)}")
            if arm["dataset"] not in (track.get("datasets") or {}):
                raise UserError(f"{where}: dataset {arm['dataset']!r} is not under datasets")
            if "parent" in arm and arm["parent"] not in every:
                raise UserError(f"{where}: parent {arm['parent']!r} is not an arm{did_you_mean(arm['parent'], every)}")
            if arm["role"] == "seed" and "differs" not in arm:
                raise UserError(f"{where}: a seed experiment says what differs from the report's (`differs`)")
            per_class = arm.get("per_class", [])
            if section == "ssl_arms" and per_class:
                raise UserError(f"{where}: per_class applies to supervised arms (an SSL arm pretrains on the whole split)")
            if not isinstance(per_class, list) or not all(isinstance(k, int) and k >= 1 for k in per_class):
                raise UserError(f"{where}: per_class is a list of whole numbers of images per class, e.g. [1, 5, 20]")


def on_folder(track: dict, folder: str, name: str | None, image_size: int | None) -> dict:
    """The track's arms on one image folder instead of its datasets (`--folder`)."""
    name = name or re.sub(r"\W", "_", Path(folder).resolve().name) or "images"
    if not NAME_PATTERN.match(name):
        raise UserError(f"--dataset {name}: names may hold only letters, digits and '_' (they become stage names)")
    dataset = {"root": str(Path(folder).resolve())} | ({"image_size": image_size} if image_size else {})
    arms = {key: {**arm, "dataset": name} for key, arm in (track.get("arms") or {}).items()}
    return {**track, "datasets": {name: dataset}, "arms": arms, "ssl_arms": {}}


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


def run_entries(track: dict, section: str, methods: dict[str, str]) -> dict[str, dict]:
    """The runs of the track's `arms` (or `ssl_arms`): one entry per arm x seed, as params.yaml's
    `runs` (or `ssl.runs`) holds them. `methods` maps each recipe to its method, which says whose
    defaults it takes (supervised runs). An arm with `per_class: [1, 5, ...]` also runs on that
    many training images of each class, as arms <arm>_k1, <arm>_k5, ... (a data-efficiency curve)."""
    runs = {}
    for name, arm in (track.get(section) or {}).items():
        recipe = arm["recipe"]
        if recipe not in methods:
            source = "recipes.yaml" if section == "arms" else "ssl.yaml's recipes"
            raise UserError(f"track: {section}.{name} names recipe '{recipe}', which is not in {source}"
                            f"{did_you_mean(recipe, methods)}")
        for per_class in [None, *arm.get("per_class", [])]:
            label = name if per_class is None else f"{name}_k{per_class}"
            for seed in arm.get("seeds", track.get("seeds", [0])):
                entry = {"dataset": arm["dataset"], "recipe": recipe}
                if label != recipe or arm.get("set"):
                    entry["arm"] = label
                if arm.get("set"):
                    entry["set"] = arm["set"]
                entry["seed"] = seed
                if per_class is not None:
                    entry["train_per_class"] = per_class
                if section == "arms":
                    entry["defaults"] = defaults_block(methods[recipe])
                runs[run_name(arm["dataset"], label, seed)] = entry
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


def rewritten(track: dict, params_text: str, recipes_file: Path) -> str:
    """`params_text` (a params.yaml) with the track's sections in place of its own, the others
    kept as they are, comments included."""
    from ruamel.yaml import YAML

    editor = YAML()  # round-trip: keeps the comments of the sections left alone
    editor.width = DVC_WIDTH
    params = editor.load(params_text)
    recipes = yaml.safe_load(recipes_file.read_text())
    ssl_file = recipes_file.parent / "ssl.yaml"
    ssl_recipes = (yaml.safe_load(ssl_file.read_text()) or {}).get("recipes") or {} if ssl_file.exists() else {}
    sections = {
        "runs": run_entries(track, "arms", {name: (cfg or {}).get("method", "torch") for name, cfg in recipes.items()}),
        "sources": used_sources(track.get("sources") or {}, track.get("datasets") or {}),
        "datasets": track.get("datasets") or {},
        "ssl": {"runs": run_entries(track, "ssl_arms", {name: cfg["method"] for name, cfg in ssl_recipes.items()})},
    }
    for section, value in sections.items():
        if as_plain(params.get(section)) != value:
            params[section] = styled(value)
    for key in TRACK_EVALUATE_KEYS:
        default = EvaluateConfig.model_fields[key].default
        value = (track.get("evaluate") or {}).get(key, default)
        if (params.get("evaluate") or {}).get(key, default) != value:
            params.setdefault("evaluate", {})[key] = value
    out = io.StringIO()
    editor.dump(params, out)
    return out.getvalue()


def apply(track: dict, params_file: Path = Path(PARAMS_FILE)) -> None:
    tmp = params_file.with_suffix(".tmp")
    tmp.write_text(rewritten(track, params_file.read_text(), params_file.parent / "recipes.yaml"))
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
        for _ in range(depth):  # under its section, indented as it will be
            placed = {"p": placed}
        writer, out = YAML(), io.StringIO()
        writer.width = DVC_WIDTH
        writer.dump(placed, out)
        if len(out.getvalue().splitlines()) > depth + 1:
            node.fa.set_block_style()
    return node


def listing() -> list[str]:
    """One line a track: its arms, its runs (arm x seed), its SSL pretrainings, the estimates it
    states and what it is about."""
    paths = sorted(TRACKS.glob("*.yaml"))
    width = max(len("track"), *(len(path.stem) for path in paths))
    lines = [f"{'track':<{width}} {'arms':>4} {'runs':>5} {'ssl':>4}  {'2-core CPU':<18} {'one GPU':<14} about"]
    for path in paths:
        track = yaml.safe_load(path.read_text()) or {}
        seeds = len(track.get("seeds", [0]))
        counts = {section: sum(len(arm.get("seeds", [None] * seeds)) * (1 + len(arm.get("per_class", [])))
                               for arm in (track.get(section) or {}).values())
                  for section in ("arms", "ssl_arms")}
        estimate = track.get("estimate") or {}
        arms = len(track.get("arms") or {}) + len(track.get("ssl_arms") or {})
        lines.append(f"{path.stem:<{width}} {arms:>4} {counts['arms']:>5} {counts['ssl_arms']:>4}  "
                     f"{estimate.get('cpu', '?'):<18} {estimate.get('gpu', '?'):<14} {track.get('about', '')}")
    return lines


@exits_cleanly
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m smallvision.profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?")
    parser.add_argument("--list", action="store_true", help="each track's arms, runs and estimated times")
    parser.add_argument("--seeds", type=int, nargs="+", help="replace the track's seeds (every arm's)")
    parser.add_argument("--arms", nargs="+", help="only these arms of the track")
    parser.add_argument("--folder", help="run the track's arms on this image folder instead of its datasets")
    parser.add_argument("--dataset", help="the folder's dataset name (default: the folder's own name)")
    parser.add_argument("--image-size", type=int, help="the folder's prepared image size (default: prepare's)")
    args = parser.parse_args(argv)
    if args.list or not args.name:
        print("\n".join(listing()))
        return
    if args.seeds is not None and any(seed < 0 for seed in args.seeds):
        raise UserError("--seeds takes non-negative integers, e.g. --seeds 0 1 2")
    track = read_track(args.name, args.seeds, args.arms)
    if args.folder:
        if not Path(args.folder).is_dir():
            raise UserError(f"--folder {args.folder}: no such folder; give a folder of <class>/<image> files")
        track = on_folder(track, args.folder, args.dataset, args.image_size)
    apply(track)
    params = load_params()
    print(f"params.yaml now runs track {args.name}: {len(params.runs)} run(s) on {len(params.run_datasets)} "
          f"dataset(s), {len(params.ssl.runs)} SSL run(s); run `dvc repro`", file=sys.stderr)


if __name__ == "__main__":
    main()
