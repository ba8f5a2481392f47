"""One short script per DVC stage: parse arguments, read params, call the library."""

import argparse
from dataclasses import dataclass


def arguments(doc: str, *names: str) -> argparse.Namespace:
    """The stage's positional arguments (e.g. dataset, recipe; `seed` is an integer), with its
    docstring as help."""
    parser = argparse.ArgumentParser(description=doc)
    for name in names:
        parser.add_argument(name, type=int if name == "seed" else str)
    return parser.parse_args()


@dataclass
class Run:
    dataset: str
    recipe: str
    seed: int
    recipe_config: object  # the recipe merged with its defaults, for this seed

    @property
    def key(self) -> tuple[str, str, int]:
        return self.dataset, self.recipe, self.seed


def run_arguments(doc: str, params) -> Run:
    """`<dataset> <recipe> <seed>`, which must name a run of params.yaml (checked before anything
    is written, so a typo leaves no folder behind)."""
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("dataset")
    parser.add_argument("recipe")
    parser.add_argument("seed", type=int)
    args = parser.parse_args()
    params.run(args.dataset, args.recipe, args.seed)
    return Run(args.dataset, args.recipe, args.seed, params.recipe(args.recipe, args.seed))
