"""Predict the classes of image files with an arm the pipeline trained.

  python -m smallvision.predict IMAGE... [--dataset D] [--arm A] [--seed S] [--top 5] [--json]

The dataset defaults to the first one `runs` uses, the arm to the one chosen on validation
(highest mean validation accuracy over seeds, reports/metrics.json; never the test split's),
the seed to that arm's best run on validation.
Images are decoded exactly as prepare decoded the dataset. For a Pokémon dataset with PokeAPI
CSVs (`pokeapi:`), the top class comes with its Pokédex facts."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from smallvision.core.errors import UserError, exits_cleanly
from smallvision.core.io import read_json
from smallvision.core.paths import REPORT, eval_dir, model_dir
from smallvision.core.prepared import load_prepared
from smallvision.core.registry import did_you_mean
from smallvision.data.images import BadImage, load_image
from smallvision.inference import load_predictor
from smallvision.options.params import load_params
from smallvision.publish.compare import chosen
from smallvision.report.facts import dataset_facts, fact_lines


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m smallvision.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--dataset")
    parser.add_argument("--arm", help="a run's arm (a recipe's name, or an arm of a track; default: chosen on validation)")
    parser.add_argument("--seed", type=int, help="which seed's model (default: the arm's best seed on validation)")
    parser.add_argument("--top", type=positive_int, default=5, metavar="N",
                        help="how many classes to show per image (default 5; more than the dataset has shows them all)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser.parse_args(argv)


def positive_int(text: str) -> int:
    """--top: a whole number of classes, at least 1 (a larger one than the dataset's class
    count is clamped to it: every class, best first)."""
    try:
        value = int(text)
    except ValueError:
        message = f"'{text}' is not a whole number; give how many classes to show, e.g. 5"
        raise argparse.ArgumentTypeError(message) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} shows no class; give 1 or more, e.g. 5")
    return value


def chosen_arm(dataset: str) -> str:
    """The arm chosen on validation: the highest mean validation accuracy over its seeds
    (reports/metrics.json)."""
    path = REPORT / "metrics.json"
    if not path.exists():
        raise UserError(f"no results yet ({path} is missing): run `dvc repro`, or name a trained arm with --arm")
    arms = read_json(path).get(dataset)
    if not arms:
        raise UserError(f"{path} has no results for dataset '{dataset}': run `dvc repro`")
    name = chosen({arm: figures.get("val_accuracy") for arm, figures in arms.items()})
    if name is None:
        raise UserError(f"no arm on '{dataset}' has a validation figure (it has no validation split), so none is "
                        f"chosen: name one with --arm ({', '.join(arms)})")
    return name


def best_seed(params, dataset: str, arm: str) -> int:
    """The seed whose run of this arm scored the highest validation accuracy (else test accuracy, for
    a dataset without a validation split; the lowest seed on a tie)."""
    seeds = params.seeds_of(dataset, arm)
    if not seeds:
        raise UserError(f"no run of arm '{arm}' on dataset '{dataset}' under runs in params.yaml"
                        f"{did_you_mean(arm, params.arms_on(dataset))}")
    runs = {seed: read_json(path) for seed in seeds if (path := eval_dir(dataset, arm, seed) / "metrics.json").exists()}
    if not runs:
        raise UserError(f"arm '{arm}' has no evaluated run on '{dataset}': run `dvc repro`, or name one with --seed")
    key = "val_accuracy" if all("val_accuracy" in figures for figures in runs.values()) else "accuracy"
    return max(sorted(runs), key=lambda seed: runs[seed][key])


def decode(paths: list[Path], cfg) -> np.ndarray:
    images = []
    for path in paths:
        if not path.is_file():
            raise UserError(f"{path}: no such file")
        try:
            images.append(load_image(path, cfg.image_size, cfg.color, cfg.resize).transpose(2, 0, 1))
        except BadImage as err:
            raise UserError(f"{err}; give a JPEG, PNG, BMP, GIF, WebP or TIFF image") from None
    return np.stack(images)


def predict(args) -> list[dict]:
    params = load_params()
    dataset = args.dataset or params.run_datasets[0]
    cfg = params.dataset(dataset)
    arm = args.arm or chosen_arm(dataset)
    seed = best_seed(params, dataset, arm) if args.seed is None else args.seed
    images = decode(args.images, cfg)
    data = load_prepared(dataset)
    predictor = load_predictor(params.arm_recipe(dataset, arm, seed), data, model_dir(dataset, arm, seed),
                               params.evaluate.test_size_scale)  # as the evaluation scored it
    scores = predictor.scores(images)
    facts = dataset_facts(cfg, data.classes)
    results = []
    for path, row in zip(args.images, scores):
        top = np.argsort(-row)[: min(args.top, len(row))]
        result = {"image": str(path), "dataset": dataset, "arm": arm, "seed": seed,
                  "top": [{"class": data.classes[i], "probability": round(float(row[i]), 4)} for i in top]}
        if facts:
            result["facts"] = facts[data.classes[top[0]]]
        results.append(result)
    return results


def show(results: list[dict]) -> None:
    for result in results:
        print(f"{result['image']}  ({result['arm']}, seed {result['seed']}, on {result['dataset']})")
        for rank, entry in enumerate(result["top"], 1):
            print(f"  {rank}. {entry['class']:<24} {entry['probability']:.4f}")
        if "facts" in result:
            print("\n".join(f"     {line}" for line in fact_lines(result["facts"])))


@exits_cleanly
def main(argv=None) -> None:
    args = parse(argv)
    results = predict(args)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
    else:
        show(results)


if __name__ == "__main__":
    main()
