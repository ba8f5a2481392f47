"""params.yaml: schema, defaults merging and validation with one clear message.

Layout: `benchmark.recipes` picks the recipes to run; `sources` are fetched into
data/raw/<name>; `datasets` are prepared from a folder (a fetched source or any local
image folder), each overriding the `prepare` defaults; `recipes` are trained and
evaluated on every dataset, each torch recipe overriding the `train` defaults.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import Field, ValidationError, model_validator

from smallvision.augment import AugmentConfig
from smallvision.data.derive import CompositeConfig, SilhouetteCropConfig
from smallvision.errors import UserError
from smallvision.models.classifier import ModelConfig
from smallvision.registry import did_you_mean
from smallvision.schema import AutoOnOff, Strict, choice_of
from smallvision.sources import SOURCES
from smallvision.train.early_stopping import EarlyStoppingConfig
from smallvision.train.lookahead import LookaheadConfig
from smallvision.train.losses import LossConfig
from smallvision.train.optim import OptimizerConfig, SchedulerConfig

PARAMS_FILE = "params.yaml"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_]+$")
RAW_DIR = "data/raw"


class BenchmarkConfig(Strict):
    """`launcher` starts the train stage: `python`, or e.g. `torchrun --nproc_per_node=4` for
    data-parallel training on several GPUs (or CPU processes, with gloo)."""

    recipes: list[str] = Field(min_length=1)
    launcher: str = Field("python", pattern=r"^(python3?|torchrun)(\s+--?[\w-]+(=\S+)?)*$")


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
    `results` maps the seed's dataset (as named in profiles/, e.g. pokemon150) to metrics."""

    source: str
    setting: str = ""
    results: dict[str, dict[str, float]]


class TrainConfig(Strict):
    """Defaults for every torch recipe (`train` in params.yaml)."""

    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    seed: int = 0
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(64, ge=1)
    eval_batch_size: int = Field(256, ge=1)
    input_size: int | None = Field(None, ge=8, le=1024)
    optimizer: OptimizerConfig = OptimizerConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    loss: LossConfig = LossConfig()
    augment: AugmentConfig = AugmentConfig()
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    lookahead: LookaheadConfig | None = None
    sampler: Literal["shuffle", "balanced"] = "shuffle"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    channels_last: AutoOnOff = "auto"
    compile: bool = False
    threads: int = Field(0, ge=0)
    cache_frozen_features: bool = True
    checkpoint_seconds: float = Field(60.0, ge=0)


class TorchRecipe(TrainConfig):
    """`tta: hflip` averages the logits of each test image and its mirror image; `hflip_translate`
    also those of the image shifted one pixel up-left and down-right (airbench's multi-crop)."""

    method: Literal["torch"] = "torch"
    model: ModelConfig
    tta: Literal["none", "hflip", "hflip_translate"] = "none"
    reference: Reference | None = None
    notes: str = ""


class KnnRecipe(TrainConfig):
    """Retrieval: embed the training split with the model's backbone (pretrained as it is, or
    after fine-tuning with the training settings when `finetune` is true) and classify each
    test image by its k nearest training images. Every k in `ks` is reported; the headline
    figures use the k that scores best on the validation split."""

    method: Literal["knn"]
    model: ModelConfig
    finetune: bool = False
    ks: list[Annotated[int, Field(ge=1)]] = Field([2, 3, 4], min_length=1)
    knn_metric: Literal["cosine", "euclidean"] = "cosine"
    reference: Reference | None = None
    notes: str = ""


class LogRegRecipe(Strict):
    """scikit-learn logistic regression on raw pixels (scaled to [0, 1], optionally standardised)."""

    method: Literal["logreg"]
    C: float = Field(1.0, gt=0)
    max_iter: int = Field(1000, ge=1)
    standardize: bool = True
    seed: int = 0
    reference: Reference | None = None
    notes: str = ""


Recipe = Annotated[Union[TorchRecipe, KnnRecipe, LogRegRecipe], Field(discriminator="method")]
TORCH_METHODS = ("torch", "knn")  # recipes that start from the `train` defaults


class EvaluateConfig(Strict):
    batch_size: int = Field(256, ge=1)
    top_k: int = Field(5, ge=2)
    timing_repeats: int = Field(3, ge=1)


class ReportConfig(Strict):
    title: str = "smallvision benchmark"
    gradcam_images: int = Field(8, ge=0, le=64)
    max_confusion_classes: int = Field(25, ge=2)
    most_confused_pairs: int = Field(10, ge=1)


class RawParams(Strict):
    benchmark: BenchmarkConfig
    sources: dict[str, choice_of(SOURCES, "kind")] = {}  # type: ignore[valid-type]
    prepare: DatasetConfig = DatasetConfig()
    datasets: dict[str, dict] = Field(min_length=1)
    train: dict = {}
    recipes: dict[str, dict] = Field(min_length=1)
    evaluate: EvaluateConfig = EvaluateConfig()
    report: ReportConfig = ReportConfig()
    ssl: dict = {}  # validated by smallvision.ssl.config


@dataclass
class Params:
    benchmark: BenchmarkConfig
    sources: dict[str, Any]
    datasets: dict[str, DatasetConfig]
    recipes: dict[str, TorchRecipe | KnnRecipe | LogRegRecipe]
    evaluate: EvaluateConfig
    report: ReportConfig
    ssl: Any = None  # smallvision.ssl.config.SSLParams

    def dataset(self, name: str) -> DatasetConfig:
        if name not in self.datasets:
            raise UserError(f"no dataset '{name}' in {PARAMS_FILE}{did_you_mean(name, self.datasets)}")
        return self.datasets[name]

    def recipe(self, name: str):
        if name not in self.recipes:
            raise UserError(f"no recipe '{name}' in {PARAMS_FILE}{did_you_mean(name, self.recipes)}")
        return self.recipes[name]


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Read and validate the whole file; any problem is one UserError naming the key.

    The defaults blocks (`prepare`, `train`) are validated on their own first, so an error
    found after merging belongs to the dataset or recipe that overrides them."""
    raw = _read_yaml(Path(path))
    top = _validate(RawParams, raw, where="")
    _check_names(top)
    train_defaults = raw.get("train") or {}
    _validate(TrainConfig, train_defaults, where="train")
    datasets = {name: _dataset(name, raw.get("prepare") or {}, cfg) for name, cfg in top.datasets.items()}
    for name, cfg in datasets.items():
        _check_fetched_paths(name, cfg, top)
    recipes = {name: _recipe(name, train_defaults, cfg) for name, cfg in top.recipes.items()}
    for name in top.benchmark.recipes:
        if name not in recipes:
            raise UserError(
                f"{PARAMS_FILE}: benchmark.recipes names '{name}', which is not defined under recipes"
                f"{did_you_mean(name, recipes)}; defined: {', '.join(recipes)}"
            )
    # Imported here: the SSL schema builds on this module's schema and helpers.
    from smallvision.ssl.config import load_ssl

    ssl = load_ssl(top.ssl, train_defaults)
    return Params(top.benchmark, top.sources, datasets, recipes, top.evaluate, top.report, ssl)


def _read_yaml(path: Path) -> dict:
    if not path.exists():
        raise UserError(f"{path} not found: run from the project root (where dvc.yaml is)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise UserError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} must be a mapping of sections (benchmark, datasets, recipes, ...)")
    return data


def _check_names(top: RawParams) -> None:
    for section in ("sources", "datasets", "recipes"):
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


def _recipe(name: str, train_defaults: dict, overrides: dict):
    method = overrides.get("method", "torch")
    merged = deep_merge(train_defaults, overrides) if method in TORCH_METHODS else dict(overrides)
    merged["method"] = method
    holder = _validate(_RecipeHolder, {"recipe": merged}, where=f"recipes.{name}", drop_first=True)
    return holder.recipe


def deep_merge(base: dict, override: dict) -> dict:
    """`override` wins; nested mappings merge key by key."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _validate(model, data: dict, where: str, drop_first: bool = False):
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = _readable_loc(data, first["loc"])[1 if drop_first else 0:]
        path = ".".join(str(part) for part in ([where] if where else []) + loc)
        what = str(loc[-1]) if loc else "value"
        raise UserError(f"{PARAMS_FILE}: {path or 'top level'}: {_describe(first, what)}") from None


def _describe(error: dict, what: str) -> str:
    """pydantic's message, with a suggestion for a misspelt choice and the offending value."""
    ctx, value = error.get("ctx", {}), error.get("input")
    if error["type"] == "union_tag_invalid":
        choices = re.findall(r"'([^']*)'", ctx["expected_tags"])
        return (f"unknown {what} '{ctx['tag']}'{did_you_mean(ctx['tag'], choices)}; "
                f"known: {', '.join(choices)}")
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "literal_error":
        message += did_you_mean(value, re.findall(r"'([^']*)'", ctx.get("expected", "")))
    if isinstance(value, (dict, list)) and error["type"] != "list_type" or error["type"] == "missing" \
            or repr(value) in message:
        return message
    return f"{message} (got {value!r})"


def _readable_loc(data: Any, loc: tuple) -> list:
    """Drop the union tags pydantic inserts into locations (backbone.cnn.widths -> backbone.widths)."""
    parts, node = [], data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        elif isinstance(node, dict) and part in node.values():
            continue  # a discriminator's value, not a key
        else:
            node = None
        parts.append(part)
    return parts
