"""params.yaml and the recipe files beside it: schema, defaults merging and validation with
one clear message.

Layout: `runs` lists what is trained and evaluated, each (dataset, recipe, seed) once;
`sources` are fetched into data/raw/<name>; `datasets` are prepared from a folder (a fetched
source or any local image folder), each overriding the `prepare` defaults; recipes.yaml holds
the recipes, each overriding the `train` (torch) or `sklearn` (logreg) defaults; catalogue.yaml
what each recipe (of recipes.yaml or ssl.yaml) is and what its seed published.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from smallvision.data.derive import CompositeConfig, SilhouetteCropConfig
from smallvision.errors import UserError
from smallvision.recipes import (  # the recipe schema lives there
    KnnRecipe,
    LogRegRecipe,
    Recipe,
    TorchRecipe,
    TrainConfig,
    defaults_block,
)
from smallvision.registry import did_you_mean
from smallvision.schema import NAME_PATTERN, PARAMS_FILE, Strict, deep_merge, read_yaml_file
from smallvision.schema import validate as _validate

RECIPES_FILE = "recipes.yaml"  # beside params.yaml
SSL_FILE = "ssl.yaml"  # beside params.yaml: the SSL defaults, recipes and evaluation (smallvision.ssl.config)
CATALOGUE_FILE = "catalogue.yaml"
RAW_DIR = "data/raw"


LAUNCHER = r"^(python3?|torchrun)(\s+--?[\w-]+(=\S+)?)*$"


class RunConfig(Strict):
    """One entry of `runs`: a recipe trained on a dataset with one seed (its key is
    <dataset>-<recipe>-s<seed>, the name of its train and evaluate stages). `defaults` names the
    params.yaml block the recipe overrides: `train` (torch recipes) or `sklearn` (method: logreg);
    DVC tracks exactly that block for the run."""

    dataset: str
    recipe: str
    seed: int = Field(ge=0)
    defaults: Literal["train", "sklearn"]

    @property
    def name(self) -> str:
        return run_name(self.dataset, self.recipe, self.seed)


def run_name(dataset: str, recipe: str, seed: int) -> str:
    return f"{dataset}-{recipe}-s{seed}"


class SSLRuns(Strict):
    methods: list[str] = []  # SSL recipes of ssl.yaml to pretrain on every dataset
    # Each recipe pretrains once per seed; a baseline's seed is its random initialisation, so
    # seed s of a from-scratch recipe starts from baseline seed s (paired comparisons).
    seeds: list[int] = Field([0], min_length=1)

    @model_validator(mode="after")
    def _distinct_non_negative(self):
        if any(seed < 0 for seed in self.seeds) or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct non-negative integers (got {self.seeds})")
        return self


class DatasetConfig(Strict):
    """How prepare turns a folder into arrays. `root` is an image folder: `<class>/<image>`,
    or `train/` and `test/` subfolders (their split is kept), or a folder holding a fetched
    source's arrays.npz. `resize`: stretch to a square, crop the centre square, or pad to a
    square with the border colour. Fractions are of each class; `test_fraction` is unused
    when the source has its own test split.

    Derived datasets: `classes` keeps only these class folders; `target` is the folder's
    class, or (class folders named after Pokémon species, facts from the PokeAPI CSVs in
    `pokeapi`) its `types` (multi-label, 18 types) or `primary_type`; `min_per_class` drops
    smaller classes and `max_per_class` keeps a seeded random pick (both count species for
    `types`); `composite` pastes each object onto background photos; `silhouette_crop`
    crops to the object before resizing (smallvision/data/selection.py, derive.py)."""

    root: str | None = None
    image_size: int = Field(32, ge=4, le=1024)
    color: Literal["rgb", "gray"] = "rgb"
    resize: Literal["stretch", "crop", "pad"] = "stretch"
    val_fraction: float = Field(0.15, ge=0, lt=0.5)
    test_fraction: float = Field(0.15, gt=0, lt=0.5)
    split_seed: int = 0
    on_bad_image: Literal["error", "skip"] = "error"
    workers: int = Field(0, ge=0)
    seed_dataset: str | None = None  # the seed experiment's dataset this one stands in for (report)
    classes: list[str] | None = Field(None, min_length=1)
    target: Literal["class", "types", "primary_type"] = "class"
    pokeapi: str | None = None
    min_per_class: int = Field(1, ge=1)
    max_per_class: int | None = Field(None, ge=1)
    composite: CompositeConfig | None = None
    silhouette_crop: SilhouetteCropConfig | None = None

    @model_validator(mode="after")
    def _type_targets_need_pokeapi(self):
        if self.target != "class" and not self.pokeapi:
            raise ValueError(f"target: {self.target} needs pokeapi: the folder of PokeAPI CSVs "
                             "(a fetched pokeapi source, e.g. data/raw/pokeapi)")
        return self


class Reference(Strict):
    """What a seed experiment published, shown beside our figures in the report.
    `results` maps the seed's dataset (as named in studies/, e.g. pokemon150) to metrics."""

    source: str
    setting: str = ""
    results: dict[str, dict[str, float]]
    train_minutes: float | None = Field(None, gt=0)  # the seed's own training time, where it gave one


class EvaluateConfig(Strict):
    batch_size: int = Field(256, ge=1)
    top_k: int = Field(5, ge=2)
    timing_repeats: int = Field(3, ge=1)
    # Test images resized to this multiple of the side the model trained at (torch classifiers that
    # pool their features; other recipes see one size and are tested at it). Random-resized crops
    # show objects larger in training than in a whole test image; a test size above the training
    # size evens that out (FixRes, Touvron et al. 2019).
    test_size_scale: float = Field(1.0, ge=0.5, le=4.0)


class ReportConfig(Strict):
    title: str = "smallvision benchmark"
    gradcam_images: int = Field(8, ge=0, le=64)
    max_confusion_classes: int = Field(25, ge=2)
    most_confused_pairs: int = Field(10, ge=1)
    confidence: float = Field(0.95, gt=0.5, lt=1)  # of the intervals over seeds


class RawParams(Strict):
    runs: dict[str, RunConfig] = Field(min_length=1)
    launcher: str = Field("python", pattern=LAUNCHER)
    sources: dict[str, dict] = {}  # validated by smallvision.sources.load_sources (validate, fetch)
    prepare: DatasetConfig = DatasetConfig()
    datasets: dict[str, dict] = Field(min_length=1)
    train: dict = {}
    sklearn: dict = {}
    evaluate: EvaluateConfig = EvaluateConfig()
    report: ReportConfig = ReportConfig()
    ssl: SSLRuns = SSLRuns()  # the SSL recipes themselves: ssl.yaml (smallvision.ssl.config)


class CatalogueEntry(Strict):
    """catalogue.yaml: what a recipe is, and what its seed experiment published."""

    notes: str = ""
    reference: Reference | None = None


@dataclass
class Params:
    runs: dict[str, RunConfig]
    launcher: str
    sources: dict[str, dict]
    datasets: dict[str, DatasetConfig]
    recipes: dict[str, TorchRecipe | KnnRecipe | LogRegRecipe]
    evaluate: EvaluateConfig
    report: ReportConfig
    ssl: SSLRuns
    folder: Path = Path(".")  # where params.yaml and its sibling files are

    def dataset(self, name: str) -> DatasetConfig:
        if name not in self.datasets:
            raise UserError(f"no dataset '{name}' in {PARAMS_FILE}{did_you_mean(name, self.datasets)}")
        return self.datasets[name]

    def recipe(self, name: str, seed: int = 0):
        """The recipe merged with its defaults, for one seed."""
        if name not in self.recipes:
            raise UserError(f"no recipe '{name}' in {RECIPES_FILE}{did_you_mean(name, self.recipes)}")
        return self.recipes[name].model_copy(update={"seed": seed})

    def run(self, dataset: str, recipe: str, seed: int) -> RunConfig:
        """The run of `runs` these stage arguments name (a typo is an error before anything is written)."""
        name = run_name(dataset, recipe, seed)
        if name not in self.runs:
            raise UserError(f"no run '{name}' under runs in {PARAMS_FILE}{did_you_mean(name, self.runs)}")
        return self.runs[name]

    @functools.cached_property
    def catalogue(self) -> dict[str, CatalogueEntry]:
        """catalogue.yaml, read only by those who ask (the report): no training stage reads it,
        so editing a note or a published figure reruns nothing but the report."""
        ssl_file = self.folder / SSL_FILE
        ssl_recipes = (read_yaml_file(ssl_file).get("recipes") or {}) if ssl_file.exists() else {}
        return _catalogue(self.folder / CATALOGUE_FILE, [*self.recipes, *ssl_recipes])

    def about(self, recipe: str) -> CatalogueEntry:
        return self.catalogue.get(recipe, CatalogueEntry())

    @property
    def run_datasets(self) -> list[str]:
        """The datasets some run uses, in the order of `runs`."""
        return list(dict.fromkeys(run.dataset for run in self.runs.values()))

    def recipes_on(self, dataset: str) -> list[str]:
        return list(dict.fromkeys(run.recipe for run in self.runs.values() if run.dataset == dataset))

    def seeds_of(self, dataset: str, recipe: str) -> list[int]:
        return sorted(run.seed for run in self.runs.values() if (run.dataset, run.recipe) == (dataset, recipe))


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Read and validate params.yaml with recipes.yaml beside it; any problem is one UserError
    naming the file and key (catalogue.yaml is read when `Params.catalogue` is first used).

    The defaults blocks (`prepare`, `train`, `sklearn`) are validated on their own first, so an
    error found after merging belongs to the dataset or recipe that overrides them. Sources and
    SSL recipes are validated by their own packages (smallvision.sources, smallvision.ssl), so
    that the stages which do not fetch or pretrain do not import them."""
    path = Path(path)
    raw = read_yaml_file(path, what="sections (runs, datasets, train, ...)")
    top = _validate(RawParams, raw, where="")
    _check_names(top)
    defaults = {"train": raw.get("train") or {}, "sklearn": raw.get("sklearn") or {}}
    _validate(TrainConfig, defaults["train"], where="train")
    _validate(LogRegRecipe, {"method": "logreg", **defaults["sklearn"]}, where="sklearn", drop_first=False)
    datasets = {name: _dataset(name, raw.get("prepare") or {}, cfg) for name, cfg in top.datasets.items()}
    for name, cfg in datasets.items():
        _check_fetched_paths(name, cfg, top)
    raw_recipes = read_yaml_file(path.parent / RECIPES_FILE, what="recipes")
    recipes = {name: _recipe(name, defaults, cfg) for name, cfg in raw_recipes.items()}
    for key, run in top.runs.items():
        _check_run(key, run, datasets, recipes)
    return Params(top.runs, top.launcher, top.sources, datasets, recipes, top.evaluate, top.report, top.ssl,
                  path.parent)


def _check_run(key: str, run: RunConfig, datasets: dict, recipes: dict) -> None:
    where = f"{PARAMS_FILE}: runs.{key}"
    if run.dataset not in datasets:
        raise UserError(f"{where}: no dataset '{run.dataset}' under datasets{did_you_mean(run.dataset, datasets)}")
    if run.recipe not in recipes:
        raise UserError(f"{where}: no recipe '{run.recipe}' in {RECIPES_FILE}{did_you_mean(run.recipe, recipes)}")
    if key != run.name:
        raise UserError(f"{where}: a run is named <dataset>-<recipe>-s<seed>: rename it to '{run.name}'")
    expected = "sklearn" if recipes[run.recipe].method == "logreg" else "train"
    if run.defaults != expected:
        raise UserError(f"{where}: recipe {run.recipe} takes its defaults from `{expected}`: "
                        f"set defaults: {expected}")


def _catalogue(path: Path, recipes: list[str]) -> dict[str, CatalogueEntry]:
    raw = read_yaml_file(path, what="recipes") if path.exists() else {}
    entries = {}
    for name, entry in raw.items():
        if name not in recipes:
            raise UserError(f"{path.name}: '{name}' is not a recipe of {RECIPES_FILE} or {SSL_FILE}"
                            f"{did_you_mean(name, recipes)}")
        entries[name] = _validate(CatalogueEntry, entry or {}, where=name, file=path.name)
    return entries


def _check_names(top: RawParams) -> None:
    for section in ("sources", "datasets"):
        for name in getattr(top, section):
            if not NAME_PATTERN.match(name):
                raise UserError(
                    f"{PARAMS_FILE}: {section}.{name}: names may hold only letters, digits and '_' "
                    "(they become folder and DVC stage names)"
                )


def _dataset(name: str, defaults: dict, overrides: dict) -> DatasetConfig:
    cfg = _validate(DatasetConfig, {**defaults, **overrides}, where=f"datasets.{name}")
    if not cfg.root:
        raise UserError(f"{PARAMS_FILE}: datasets.{name}.root is not set: give the image folder to prepare")
    return cfg


def _check_fetched_paths(name: str, cfg: DatasetConfig, top: RawParams) -> None:
    """A folder under data/raw (root, pokeapi, composite.backgrounds) must be a source this file fetches."""
    paths = {"root": cfg.root, "pokeapi": cfg.pokeapi,
             "composite.backgrounds": cfg.composite.backgrounds if cfg.composite else None}
    for key, path in paths.items():
        parts = Path(path).parts if path else ()
        if parts[:2] == tuple(Path(RAW_DIR).parts) and len(parts) > 2 and parts[2] not in top.sources:
            raise UserError(
                f"{PARAMS_FILE}: datasets.{name}.{key} is {path}, but no source '{parts[2]}' is defined "
                f"under sources{did_you_mean(parts[2], top.sources)}"
            )


class _RecipeHolder(Strict):
    recipe: Recipe


def _recipe(name: str, defaults: dict[str, dict], overrides: dict):
    """A recipe of recipes.yaml merged over its defaults block (`train` or `sklearn`)."""
    if not isinstance(overrides, dict):
        raise UserError(f"{RECIPES_FILE}: {name}: a recipe is a mapping of settings (got {overrides!r})")
    if not NAME_PATTERN.match(name):
        raise UserError(f"{RECIPES_FILE}: {name}: names may hold only letters, digits and '_' "
                        "(they become folder and DVC stage names)")
    if "seed" in overrides or "seed" in defaults["train"] or "seed" in defaults["sklearn"]:
        raise UserError(f"{RECIPES_FILE}: {name}: seeds are set per run (runs.<name>.seed in {PARAMS_FILE}), "
                        "not in a recipe or its defaults")
    method = overrides.get("method", "torch")
    base = defaults[defaults_block(method)]
    merged = deep_merge(base, overrides)
    merged["method"] = method
    holder = _validate(_RecipeHolder, {"recipe": merged}, where=name, drop_first=True, file=RECIPES_FILE)
    return holder.recipe
