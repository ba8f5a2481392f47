"""Predict the classes of image files with a recipe the pipeline trained.

  python -m smallvision.predict IMAGE... [--dataset D] [--recipe R] [--top 5] [--json]

The dataset defaults to the first in params.yaml, the recipe to that dataset's most accurate
one in reports/metrics.json. Images are decoded exactly as prepare decoded the dataset. For a
Pokémon dataset with PokeAPI CSVs (`pokeapi:`), the top class comes with its Pokédex facts."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from smallvision.config import load_params
from smallvision.data.images import BadImage, load_image
from smallvision.data.prepared import load_prepared
from smallvision.errors import UserError, exits_cleanly
from smallvision.inference import load_predictor
from smallvision.io import read_json
from smallvision.paths import REPORT
from smallvision.registry import did_you_mean
from smallvision.report.facts import dataset_facts, fact_lines


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m smallvision.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--dataset")
    parser.add_argument("--recipe")
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser.parse_args(argv)


def best_recipe(dataset: str) -> str:
    path = REPORT / "metrics.json"
    if not path.exists():
        raise UserError(f"no results yet ({path} is missing): run `dvc repro`, or name a trained recipe with --recipe")
    recipes = read_json(path).get(dataset)
    if not recipes:
        raise UserError(f"{path} has no results for dataset '{dataset}': run `dvc repro`")
    return max(recipes, key=lambda name: recipes[name].get("accuracy", 0))


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
    dataset = args.dataset or next(iter(params.datasets))
    cfg = params.dataset(dataset)
    recipe_name = args.recipe or best_recipe(dataset)
    if recipe_name not in params.recipes:
        raise UserError(f"no recipe '{recipe_name}' in params.yaml{did_you_mean(recipe_name, params.recipes)}")
    images = decode(args.images, cfg)
    data = load_prepared(dataset)
    predictor = load_predictor(dataset, recipe_name, params.recipe(recipe_name), data)
    scores = predictor.scores(images)
    facts = dataset_facts(cfg, data.classes)
    results = []
    for path, row in zip(args.images, scores):
        top = np.argsort(-row)[: args.top]
        result = {"image": str(path), "dataset": dataset, "recipe": recipe_name,
                  "top": [{"class": data.classes[i], "probability": round(float(row[i]), 4)} for i in top]}
        if facts:
            result["facts"] = facts[data.classes[top[0]]]
        results.append(result)
    return results


def show(results: list[dict]) -> None:
    for result in results:
        print(f"{result['image']}  ({result['recipe']} on {result['dataset']})")
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
