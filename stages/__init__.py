"""One short script per DVC stage: parse arguments, read params, call the library."""

import argparse
from dataclasses import dataclass


def arguments(doc: str, *names: str) -> argparse.Namespace:
    """The stage's positional arguments (e.g. a dataset or a run's key), with its docstring as help."""
    parser = argparse.ArgumentParser(description=doc)
    for name in names:
        parser.add_argument(name)
    return parser.parse_args()


@dataclass
class Run:
    dataset: str
    arm: str
    seed: int
    recipe_config: object  # the arm's recipe merged with its defaults and its `set`, for this seed
    train_per_class: int | None = None  # a training subset of so many images a class (see PreparedData)

    @property
    def key(self) -> tuple[str, str, int]:
        return self.dataset, self.arm, self.seed


def run_arguments(doc: str, params) -> Run:
    """`<dataset>-<arm>-s<seed>`, which must name a run of params.yaml (checked before anything
    is written, so a typo leaves no folder behind)."""
    key = arguments(doc, "run").run
    run = params.run(key)
    return Run(run.dataset, run.arm, run.seed, params.run_recipe(key), run.train_per_class)
