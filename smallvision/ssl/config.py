"""Self-supervised pretraining's options: ssl.yaml's defaults, recipes and evaluation, and the
runs of params.yaml's `ssl.runs`.

ssl.yaml:
  pretrain: {...}           # defaults for every recipe (a recipe overrides any key)
  recipes: {simclr: {method: simclr, ...}, random: {method: none}, ...}
  evaluate: {knn: {...}, probe: {...}, finetune: {...}}   # probe/finetune override `train`
params.yaml:
  ssl:
    runs:                   # each pretrains once and is evaluated (kNN, probe, fine-tune)
      digits-simclr-s0: {dataset: digits, recipe: simclr, seed: 0}
      digits-simclr_long-s0: {dataset: digits, recipe: simclr, arm: simclr_long, set: {epochs: 200}, seed: 0}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

import smallvision.ssl  # noqa: F401  (fills SSL_METHODS)
from smallvision.core.errors import UserError
from smallvision.core.registry import did_you_mean
from smallvision.options.params import SSL_FILE, SSLRunConfig, SSLRuns
from smallvision.options.recipes import TorchRecipe
from smallvision.options.schema import (
    NAME_PATTERN,
    PARAMS_FILE,
    Strict,
    choice_of,
    deep_merge,
    read_yaml_file,
)
from smallvision.options.schema import validate as _validate
from smallvision.ssl.base import SSL_METHODS, PretrainConfig

BACKBONE_FILE = "backbone.pt"  # what pretrain saves: the backbone's plain state dict


class KnnConfig(Strict):
    """kNN classification on frozen features by cosine similarity (smallvision.models.retrieval, as
    the retrieval recipes). Every k is reported; the first is also logged during pretraining."""

    k: list[int] = Field([20, 3], min_length=1)


class SSLEvaluateConfig(Strict):
    """`probe` and `finetune` are recipes minus `model` (that comes from the SSL recipe's
    backbone and the pretrained weights), overriding the `train` defaults key by key."""

    knn: KnnConfig = KnnConfig()
    probe: dict = {}
    finetune: dict = {}


class RawSSL(Strict):
    pretrain: dict = {}
    recipes: dict[str, dict] = {}
    evaluate: SSLEvaluateConfig = SSLEvaluateConfig()


class _RecipeHolder(Strict):
    recipe: choice_of(SSL_METHODS, "method")  # type: ignore[valid-type]


EVALUATIONS = {"probe": "all", "finetune": "none"}  # evaluation -> the backbone's freeze policy


@dataclass
class SSLParams:
    runs: dict[str, SSLRunConfig]
    recipes: dict[str, PretrainConfig]
    arms: dict[str, PretrainConfig]  # by run key: its recipe with the run's `set` and seed
    evaluate: SSLEvaluateConfig
    train_defaults: dict

    def recipe(self, name: str, seed: int = 0) -> PretrainConfig:
        """An SSL recipe of ssl.yaml merged with the pretrain defaults, for one seed."""
        if name not in self.recipes:
            raise UserError(f"no SSL recipe '{name}' under recipes in {SSL_FILE}{did_you_mean(name, self.recipes)}")
        return self.recipes[name].model_copy(update={"seed": seed})

    def run(self, key: str) -> SSLRunConfig:
        """The run of `ssl.runs` a stage argument names (a typo fails before anything is written)."""
        if key not in self.runs:
            raise UserError(f"no SSL run '{key}' under ssl.runs in {PARAMS_FILE}{did_you_mean(key, self.runs)}")
        return self.runs[key]

    def run_recipe(self, key: str) -> PretrainConfig:
        return self.arms[self.run(key).name]

    def evaluation_recipe(self, key: str, evaluation: str, backbone_init: str) -> TorchRecipe:
        """The torch recipe that evaluates SSL run `key` by `evaluation` (probe or finetune): its
        backbone, loaded from `backbone_init`, at its input size, trained with the run's seed."""
        return self._evaluation(self.run_recipe(key), evaluation, backbone_init)

    def _evaluation(self, ssl_recipe: PretrainConfig, evaluation: str, backbone_init: str) -> TorchRecipe:
        overrides = getattr(self.evaluate, evaluation)
        if "seed" in overrides:
            raise UserError(f"{SSL_FILE}: evaluate.{evaluation}.seed: seeds are the runs' (ssl.runs in {PARAMS_FILE}), "
                            "not an evaluation's")
        model = {"backbone": ssl_recipe.backbone.model_dump(), "backbone_init": backbone_init,
                 "freeze": EVALUATIONS[evaluation]}
        merged = deep_merge(self.train_defaults, {"input_size": ssl_recipe.input_size, "seed": ssl_recipe.seed,
                                                  **overrides})
        merged["model"] = deep_merge(model, overrides.get("model", {}))
        return _validate(TorchRecipe, merged, where=f"evaluate.{evaluation}", file=SSL_FILE)


def check_method(name: str, recipe: dict) -> None:
    where = f"{SSL_FILE}: recipes.{name}.method"
    if "method" not in recipe:
        raise UserError(f"{where} is missing: one of {', '.join(SSL_METHODS.names())} (none: a baseline)")
    try:
        SSL_METHODS[recipe["method"]]
    except UserError as err:
        raise UserError(f"{where}: {err}") from None


def with_defaults(defaults: dict, overrides: dict) -> dict:
    """`overrides` merged key by key over `defaults`, except that a recipe's backbone replaces
    the default one whole (its options depend on its name)."""
    merged = deep_merge(defaults, overrides)
    if "backbone" in overrides:
        merged["backbone"] = overrides["backbone"]
    return merged


def load_ssl(raw: dict, runs: dict, train_defaults: dict) -> SSLParams:
    top = _validate(RawSSL, raw, where="", file=SSL_FILE)
    for where, block in [("pretrain", top.pretrain), *((f"recipes.{n}", r) for n, r in top.recipes.items())]:
        if isinstance(block, dict) and "seed" in block:
            raise UserError(f"{SSL_FILE}: {where}: seeds are the runs' (ssl.runs in {PARAMS_FILE}), not a recipe's "
                            "or its defaults'")
    _validate(PretrainConfig, {"method": "none", **top.pretrain}, where="pretrain", file=SSL_FILE)
    recipes = {}
    for name, overrides in top.recipes.items():
        if not NAME_PATTERN.match(name):
            raise UserError(f"{SSL_FILE}: recipes.{name}: names may hold only letters, digits and '_' "
                            "(they become folder and DVC stage names)")
        check_method(name, overrides)
        recipes[name] = _pretrain_recipe(with_defaults(top.pretrain, overrides), f"recipes.{name}", SSL_FILE)
    arms = {}
    for key, run in runs.items():
        where = f"{PARAMS_FILE}: ssl.runs.{key}"
        if run.recipe not in recipes:
            raise UserError(f"{where}: no SSL recipe '{run.recipe}' under recipes in {SSL_FILE}"
                            f"{did_you_mean(run.recipe, recipes)}; defined: {', '.join(recipes) or 'none'}")
        if key != run.name:
            raise UserError(f"{where}: an SSL run is named <dataset>-<arm>-s<seed>: rename it to '{run.name}'")
        arm = recipes[run.recipe]
        if run.set:
            merged = with_defaults(top.pretrain, deep_merge(top.recipes[run.recipe], run.set))
            arm = _pretrain_recipe(merged, f"ssl.runs.{key}.set", PARAMS_FILE)
        arms[key] = arm.model_copy(update={"seed": run.seed})
    params = SSLParams(runs, recipes, arms, top.evaluate, train_defaults)
    for recipe in [*recipes.values(), *arms.values()]:  # a bad evaluation key fails here, before any stage runs
        for evaluation in EVALUATIONS:
            params._evaluation(recipe, evaluation, BACKBONE_FILE)
    return params


def _pretrain_recipe(merged: dict, where: str, file: str) -> PretrainConfig:
    return _validate(_RecipeHolder, {"recipe": merged}, where=where, drop_first=True, file=file).recipe


def load_ssl_params(params_path: str | Path = "params.yaml") -> SSLParams:
    """The SSL recipes of ssl.yaml, with params.yaml's `ssl.runs` (what runs) and `train` defaults
    (the probe's and fine-tune's)."""
    params_path = Path(params_path)
    params = read_yaml_file(params_path)
    ssl_path = params_path.parent / SSL_FILE
    raw = read_yaml_file(ssl_path, what="pretrain, recipes and evaluate")
    if "runs" in raw:
        raise UserError(f"{ssl_path} must be a mapping of pretrain, recipes and evaluate (which SSL runs run is "
                        f"ssl.runs in {params_path.name})")
    runs = _validate(SSLRuns, params.get("ssl") or {}, where="ssl").runs
    return load_ssl(raw, runs, params.get("train") or {})
