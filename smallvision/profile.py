"""Switch params.yaml to a profile: the sources, datasets and recipes of a benchmark run.

  python -m smallvision.profile NAME     # profiles/NAME.yaml; then `dvc repro`
  python -m smallvision.profile --list

A profile replaces the `sources`, `datasets` and `benchmark` sections of params.yaml (comments
elsewhere are kept; `git checkout params.yaml` goes back). `$VAR` in a profile's values is
taken from the environment (machine-specific folders); `recipes: all` means every recipe."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import yaml

from smallvision.config import PARAMS_FILE, load_params
from smallvision.errors import UserError, exits_cleanly
from smallvision.registry import did_you_mean

PROFILES = Path("profiles")
SECTIONS = ("sources", "datasets", "benchmark")


def read_profile(name: str) -> dict:
    path = PROFILES / f"{name}.yaml"
    known = sorted(p.stem for p in PROFILES.glob("*.yaml"))
    if not path.is_file():
        raise UserError(f"no profile '{name}' in {PROFILES}/{did_you_mean(name, known)}; known: {', '.join(known)}")
    return expand(yaml.safe_load(path.read_text()), name)


def expand(value, profile: str):
    """$VAR from the environment, everywhere in the profile; a missing variable is an error."""
    if isinstance(value, dict):
        return {key: expand(item, profile) for key, item in value.items()}
    if isinstance(value, list):
        return [expand(item, profile) for item in value]
    if isinstance(value, str):
        for name in re.findall(r"\$(\w+)", value):
            if name not in os.environ:
                raise UserError(f"profile {profile} needs ${name}: set it to a folder on this machine")
        return os.path.expandvars(value)
    return value


def apply(profile: dict, params_file: Path = Path(PARAMS_FILE)) -> None:
    from ruamel.yaml import YAML

    editor = YAML()  # round-trip: keeps the comments of the sections left alone
    editor.width = 110
    params = editor.load(params_file.read_text())
    for section in SECTIONS:
        if section in profile:
            params[section] = profile[section]
    if params["benchmark"].get("recipes") == "all":
        params["benchmark"]["recipes"] = list(params["recipes"])
    params["benchmark"].setdefault("launcher", "python")
    tmp = params_file.with_suffix(".tmp")
    with open(tmp, "w") as handle:
        editor.dump(params, handle)
    try:
        load_params(tmp)  # the result must be valid before it replaces params.yaml
    except UserError:
        tmp.unlink()
        raise
    tmp.replace(params_file)


@exits_cleanly
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m smallvision.profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args(argv)
    if args.list or not args.name:
        for path in sorted(PROFILES.glob("*.yaml")):
            print(f"{path.stem:<16} {path.read_text().splitlines()[0].lstrip('# ')}")
        return
    apply(read_profile(args.name))
    params = load_params()
    print(f"params.yaml now runs profile {args.name}: {len(params.datasets)} dataset(s) x "
          f"{len(params.benchmark.recipes)} recipe(s); run `dvc repro`", file=sys.stderr)


if __name__ == "__main__":
    main()
