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
from typing import Annotated, Literal

from pydantic import Field, model_validator

from smallvision.core.errors import UserError
from smallvision.core.paths import run_name
from smallvision.core.registry import did_you_mean
from smallvision.options.dataset import DatasetConfig
from smallvision.options.recipes import (  # the recipe schema lives there
    KnnRecipe,
    LogRegRecipe,
    MajorityRecipe,
    Recipe,
    TorchRecipe,
    TrainConfig,
    defaults_block,
)
from smallvision.options.schema import (
    NAME_PATTERN,
    PARAMS_FILE,
    Strict,
    deep_merge,
    read_yaml_file,
)
from smallvision.options.schema import validate as _validate

RECIPES_FILE = "recipes.yaml"  # beside params.yaml
SSL_FILE = "ssl.yaml"  # beside params.yaml: the SSL defaults, recipes and evaluation (smallvision.ssl.config)
CATALOGUE_FILE = "catalogue.yaml"
RAW_DIR = "data/raw"


LAUNCHER = r"^(python3?|torchrun)(\s+--?[\w-]+(=\S+)?)*$"


class Arm(Strict):
    """A run of an arm: a recipe with a few keys overridden (`set`, merged key by key over the
    recipe as the recipe is over its defaults), named `arm` (the recipe's own name when nothing
    is set), trained on a dataset with one seed. Its key <dataset>-<arm>-s<seed> names its DVC
    stages and its folders."""

    dataset: str
    recipe: str
    arm: str | None = None
    set: dict = {}
    seed: int = Field(ge=0)
    # Train on so many images of each class of the training split, drawn with the run's seed (a data-
    # efficiency curve); validation and test are the dataset's whole splits. None: the whole split.
    train_per_class: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _arm_named(self):
        if self.arm is None:
            if self.set:
                raise ValueError("an arm that sets keys of its recipe needs a name of its own: give `arm`")
            self.arm = self.recipe
        if not NAME_PATTERN.match(self.arm):
            raise ValueError(f"arm {self.arm!r}: names may hold only letters, digits and '_' (they become folder "
                             "and DVC stage names)")
        for key in ("seed", "method"):
            if key in self.set:
                raise ValueError(f"set.{key}: an arm may not set its recipe's {key} "
                                 + ("(seeds are the run's)" if key == "seed" else "(name another recipe instead)"))
        return self

    @property
    def name(self) -> str:
        return run_name(self.dataset, self.arm, self.seed)


class RunConfig(Arm):
    """One entry of `runs`: an arm of recipes.yaml, trained and evaluated. `defaults` names the
    params.yaml block its recipe overrides: `train` (torch recipes) or `sklearn` (logreg, the
    majority baseline); DVC tracks exactly that block, the recipe and this entry for the run."""

    defaults: Literal["train", "sklearn"]


class SSLRunConfig(Arm):
    """One entry of `ssl.runs`: an arm of ssl.yaml's recipes pretrained on a dataset's training
    split without labels, then evaluated (kNN, probe, fine-tune). A baseline's seed is its random
    initialisation, so seed s of a from-scratch arm starts from baseline seed s (paired)."""

    @model_validator(mode="after")
    def _on_the_whole_split(self):
        if self.train_per_class is not None:
            raise ValueError("train_per_class applies to the supervised runs (runs), not to SSL pretraining")
        return self


class SSLRuns(Strict):
    runs: dict[str, SSLRunConfig] = {}


class Reference(Strict):
    """What a seed experiment published, with where: the report's file (of the five in shared/seeds)
    and the section the figure is printed under, as printed. `results` maps the seed dataset (a
    track's, e.g. pokemon150) to metric -> value, named as ours are when the report's figure is
    the same measure (`accuracy` on a test split), else with the report's own name (its `f1`,
    `tpr`, a Kaggle leaderboard's score); `measured_on` says on what, `printed` the words where
    the figure is approximate or odd."""

    report: str = Field(pattern=r"^\d{3}_[0-9a-f]+\.txt$")
    section: str = Field(min_length=1)
    experiment: str = Field(min_length=1)
    results: dict[str, dict[str, float]]
    measured_on: str = "not stated"
    printed: str = ""
    train_minutes: float | None = Field(None, gt=0)  # the seed's own training time, where it gave one

    @property
    def source(self) -> str:
        """'ResNet50 GAP head, cross-entropy (002_b8e9….txt, "2.3 Third Experiment")'."""
        return f'{self.experiment} ({self.report}, "{self.section}")'


class EvaluateConfig(Strict):
    batch_size: int = Field(256, ge=1)
    top_k: int = Field(5, ge=2)
    timing_repeats: int = Field(3, ge=1)
    # Test images resized to this multiple of the side the model trained at (torch classifiers that
    # pool their features; other recipes see one size and are tested at it). Random-resized crops
    # show objects larger in training than in a whole test image; a test size above the training
    # size evens that out (FixRes, Touvron et al. 2019).
    test_size_scale: float = Field(1.0, ge=0.5, le=4.0)
    # Image retrieval as the Cars report did it: each test image classified by its k nearest training
    # images on a trained classifier's pooled features (its head left off), Euclidean and cosine, for
    # each k here (none: no retrieval figures).
    retrieval_ks: list[Annotated[int, Field(ge=1)]] = []


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
    """catalogue.yaml: what a recipe is, and what its seed experiment published (`reference`; a list
    where its figures stand in several sections of the report, e.g. one retrieval run per k)."""

    notes: str = ""
    reference: Reference | list[Reference] | None = None

    @property
    def references(self) -> list[Reference]:
        return self.reference if isinstance(self.reference, list) else [self.reference] if self.reference else []


@dataclass
class Params:
    runs: dict[str, RunConfig]
    launcher: str
    sources: dict[str, dict]
    datasets: dict[str, DatasetConfig]
    recipes: dict[str, TorchRecipe | KnnRecipe | LogRegRecipe | MajorityRecipe]
    arms: dict[str, TorchRecipe | KnnRecipe | LogRegRecipe | MajorityRecipe]  # by run key: its recipe with `set`
    evaluate: EvaluateConfig
    report: ReportConfig
    ssl: SSLRuns
    folder: Path = Path(".")  # where params.yaml and its sibling files are

    def dataset(self, name: str) -> DatasetConfig:
        if name not in self.datasets:
            raise UserError(f"no dataset '{name}' in {PARAMS_FILE}{did_you_mean(name, self.datasets)}")
        return self.datasets[name]

    def recipe(self, name: str, seed: int = 0):
        """A recipe of recipes.yaml merged with its defaults, for one seed."""
        if name not in self.recipes:
            raise UserError(f"no recipe '{name}' in {RECIPES_FILE}{did_you_mean(name, self.recipes)}")
        return self.recipes[name].model_copy(update={"seed": seed})

    def run(self, key: str) -> RunConfig:
        """The run of `runs` a stage argument names (a typo is an error before anything is written)."""
        if key not in self.runs:
            raise UserError(f"no run '{key}' under runs in {PARAMS_FILE}{did_you_mean(key, self.runs)}")
        return self.runs[key]

    def run_recipe(self, key: str):
        """What run `key` trains: its arm (the recipe with the run's `set`), with the run's seed."""
        return self.arms[self.run(key).name]

    def arm_recipe(self, dataset: str, arm: str, seed: int | None = None):
        """What the arm trains on the dataset, with `seed` (its first seed's run when None)."""
        key = run_name(dataset, arm, self.seeds_of(dataset, arm)[0] if seed is None else seed)
        return self.run_recipe(key)

    @functools.cached_property
    def catalogue(self) -> dict[str, CatalogueEntry]:
        """catalogue.yaml, read only by those who ask (the report): no training stage reads it,
        so editing a note or a published figure reruns nothing but the report."""
        ssl_file = self.folder / SSL_FILE
        ssl_recipes = (read_yaml_file(ssl_file).get("recipes") or {}) if ssl_file.exists() else {}
        return _catalogue(self.folder / CATALOGUE_FILE, [*self.recipes, *ssl_recipes])

    def about(self, recipe: str) -> CatalogueEntry:
        return self.catalogue.get(recipe, CatalogueEntry())

    def recipe_of(self, dataset: str, arm: str) -> str:
        """The recipes.yaml recipe the arm sets keys of (its catalogue entry is the arm's too)."""
        return self.run(run_name(dataset, arm, self.seeds_of(dataset, arm)[0])).recipe

    @property
    def run_datasets(self) -> list[str]:
        """The datasets some run uses, in the order of `runs`."""
        return list(dict.fromkeys(run.dataset for run in self.runs.values()))

    def arms_on(self, dataset: str) -> list[str]:
        return list(dict.fromkeys(run.arm for run in self.runs.values() if run.dataset == dataset))

    def seeds_of(self, dataset: str, arm: str) -> list[int]:
        return sorted(run.seed for run in self.runs.values() if (run.dataset, run.arm) == (dataset, arm))


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Read and validate params.yaml with recipes.yaml beside it; any problem is one UserError
    naming the file and key (catalogue.yaml is read when `Params.catalogue` is first used).

    The defaults blocks (`prepare`, `train`, `sklearn`) are validated on their own first, so an
    error found after merging belongs to the dataset or recipe that overrides them, and a recipe
    before the arms that set its keys. Sources and SSL recipes are validated by their own
    packages (smallvision.sources, smallvision.ssl), so that the stages which do not fetch or
    pretrain do not import them."""
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
    arms = {}
    for key, run in top.runs.items():
        _check_run(key, run, datasets, recipes)
        overrides = deep_merge(raw_recipes[run.recipe] or {}, run.set)
        arm = _recipe(run.arm, defaults, overrides, where=f"runs.{key}.set", file=PARAMS_FILE) if run.set \
            else recipes[run.recipe]
        arms[key] = arm.model_copy(update={"seed": run.seed})
    for key, run in top.ssl.runs.items():
        if run.dataset not in datasets:
            raise UserError(f"{PARAMS_FILE}: ssl.runs.{key}: no dataset '{run.dataset}' under datasets"
                            f"{did_you_mean(run.dataset, datasets)}")
    return Params(top.runs, top.launcher, top.sources, datasets, recipes, arms, top.evaluate, top.report, top.ssl,
                  path.parent)


def _check_run(key: str, run: RunConfig, datasets: dict, recipes: dict) -> None:
    where = f"{PARAMS_FILE}: runs.{key}"
    if run.dataset not in datasets:
        raise UserError(f"{where}: no dataset '{run.dataset}' under datasets{did_you_mean(run.dataset, datasets)}")
    if run.recipe not in recipes:
        raise UserError(f"{where}: no recipe '{run.recipe}' in {RECIPES_FILE}{did_you_mean(run.recipe, recipes)}")
    if key != run.name:
        raise UserError(f"{where}: a run is named <dataset>-<arm>-s<seed>: rename it to '{run.name}'")
    expected = defaults_block(recipes[run.recipe].method)
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


def _recipe(name: str, defaults: dict[str, dict], overrides: dict, where: str | None = None, file: str = RECIPES_FILE):
    """A recipe of recipes.yaml (or an arm: a recipe with keys set) merged over its defaults block
    (`train` or `sklearn`); an error names `where` in `file` (the recipe in recipes.yaml by default)."""
    where = where or name
    if not isinstance(overrides, dict):
        raise UserError(f"{file}: {where}: a recipe is a mapping of settings (got {overrides!r})")
    if not NAME_PATTERN.match(name):
        raise UserError(f"{file}: {where}: names may hold only letters, digits and '_' "
                        "(they become folder and DVC stage names)")
    if "seed" in overrides or "seed" in defaults["train"] or "seed" in defaults["sklearn"]:
        raise UserError(f"{file}: {where}: seeds are set per run (runs.<name>.seed in {PARAMS_FILE}), "
                        "not in a recipe or its defaults")
    method = overrides.get("method", "torch")
    # The majority baseline takes no settings from its block (DVC still tracks one per run).
    base = {} if method == "majority" else defaults[defaults_block(method)]
    merged = deep_merge(base, overrides)
    merged["method"] = method
    holder = _validate(_RecipeHolder, {"recipe": merged}, where=where, drop_first=True, file=file)
    return holder.recipe
