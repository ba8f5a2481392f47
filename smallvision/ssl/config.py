"""The `ssl` section of params.yaml: which SSL recipes run, their options, their evaluation.

ssl:
  methods: [simclr, byol]   # names under ssl.recipes, pretrained and evaluated on every dataset
  seeds: [0, 1, 2]          # each pretrains and is evaluated once per seed
  pretrain: {...}           # defaults for every recipe (a recipe overrides any key)
  recipes: {simclr: {method: simclr, ...}, random: {method: none}, ...}
  evaluate: {knn: {...}, probe: {...}, finetune: {...}}   # probe/finetune override `train`
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

import smallvision.ssl  # noqa: F401  (fills SSL_METHODS)
from smallvision.config import SSL_FILE
from smallvision.errors import UserError
from smallvision.recipes import TorchRecipe
from smallvision.registry import did_you_mean
from smallvision.schema import NAME_PATTERN, PARAMS_FILE, Strict, choice_of, deep_merge, read_yaml_file
from smallvision.schema import validate as _validate
from smallvision.ssl.base import SSL_METHODS, PretrainConfig

BACKBONE_FILE = "backbone.pt"  # what pretrain saves: the backbone's plain state dict


class KnnConfig(Strict):
    """kNN classification on frozen features by cosine similarity (smallvision.retrieval, as
    the retrieval recipes). Every k is reported; the first is also logged during pretraining."""

    k: list[int] = Field([20, 3], min_length=1)


class SSLEvaluateConfig(Strict):
    """`probe` and `finetune` are recipes minus `model` (that comes from the SSL recipe's
    backbone and the pretrained weights), overriding the `train` defaults key by key."""

    knn: KnnConfig = KnnConfig()
    probe: dict = {}
    finetune: dict = {}


class RawSSL(Strict):
    methods: list[str] = []
    seeds: list[int] = [0]
    pretrain: dict = {}
    recipes: dict[str, dict] = {}
    evaluate: SSLEvaluateConfig = SSLEvaluateConfig()


class _RecipeHolder(Strict):
    recipe: choice_of(SSL_METHODS, "method")  # type: ignore[valid-type]


EVALUATIONS = {"probe": "all", "finetune": "none"}  # evaluation -> the backbone's freeze policy


@dataclass
class SSLParams:
    methods: list[str]
    seeds: list[int]
    recipes: dict[str, PretrainConfig]
    evaluate: SSLEvaluateConfig
    train_defaults: dict

    def recipe(self, name: str, seed: int = 0) -> PretrainConfig:
        """The SSL recipe merged with the pretrain defaults, for one seed."""
        if name not in self.recipes:
            raise UserError(f"no SSL recipe '{name}' under ssl.recipes in {PARAMS_FILE}"
                            f"{did_you_mean(name, self.recipes)}")
        return self.recipes[name].model_copy(update={"seed": seed})

    def check_seed(self, seed: int) -> None:
        """A stage's seed argument must be one of ssl.seeds (a typo fails before anything is written)."""
        if seed not in self.seeds:
            raise UserError(f"seed {seed} is not in ssl.seeds of {PARAMS_FILE} "
                            f"({', '.join(map(str, self.seeds))}): add it there, or pass one of those")

    def evaluation_recipe(self, name: str, evaluation: str, backbone_init: str, seed: int = 0) -> TorchRecipe:
        """The torch recipe that evaluates SSL recipe `name` by `evaluation` (probe or finetune):
        its backbone, loaded from `backbone_init`, at its input size, trained with `seed`."""
        ssl_recipe = self.recipe(name)
        overrides = getattr(self.evaluate, evaluation)
        if "seed" in overrides:
            raise UserError(f"ssl.evaluate.{evaluation}.seed: seeds are set by ssl.seeds in {PARAMS_FILE}, "
                            "not in an evaluation")
        model = {"backbone": ssl_recipe.backbone.model_dump(), "backbone_init": backbone_init,
                 "freeze": EVALUATIONS[evaluation]}
        merged = deep_merge(self.train_defaults, {"input_size": ssl_recipe.input_size, "seed": seed, **overrides})
        merged["model"] = deep_merge(model, overrides.get("model", {}))
        return _validate(TorchRecipe, merged, where=f"ssl.evaluate.{evaluation}")


def check_method(name: str, recipe: dict) -> None:
    where = f"{PARAMS_FILE}: ssl.recipes.{name}.method"
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


def load_ssl(raw: dict, train_defaults: dict) -> SSLParams:
    top = _validate(RawSSL, raw, where="ssl")
    for where, block in [("pretrain", top.pretrain), *((f"recipes.{n}", r) for n, r in top.recipes.items())]:
        if isinstance(block, dict) and "seed" in block:
            raise UserError(f"{SSL_FILE}: {where}: seeds are set by ssl.seeds in {PARAMS_FILE}, not in a recipe "
                            "or its defaults")
    _validate(PretrainConfig, {"method": "none", **top.pretrain}, where="ssl.pretrain")
    recipes = {}
    for name, overrides in top.recipes.items():
        if not NAME_PATTERN.match(name):
            raise UserError(f"{PARAMS_FILE}: ssl.recipes.{name}: names may hold only letters, digits and '_' "
                            "(they become folder and DVC stage names)")
        check_method(name, overrides)
        holder = _validate(_RecipeHolder, {"recipe": with_defaults(top.pretrain, overrides)},
                           where=f"ssl.recipes.{name}", drop_first=True)
        recipes[name] = holder.recipe
    for name in top.methods:
        if name not in recipes:
            raise UserError(f"{PARAMS_FILE}: ssl.methods names '{name}', which is not defined under ssl.recipes"
                            f"{did_you_mean(name, recipes)}; defined: {', '.join(recipes) or 'none'}")
    params = SSLParams(top.methods, top.seeds, recipes, top.evaluate, train_defaults)
    for name in recipes:  # an evaluation recipe with a bad key fails here, before any stage runs
        for evaluation in EVALUATIONS:
            params.evaluation_recipe(name, evaluation, BACKBONE_FILE)
    return params


def load_ssl_params(params_path: str | Path = "params.yaml") -> SSLParams:
    """The SSL recipes of ssl.yaml, with params.yaml's `ssl.methods` and `ssl.seeds` (what runs) and `train`
    defaults (the probe's and fine-tune's)."""
    params_path = Path(params_path)
    params = read_yaml_file(params_path)
    ssl_path = params_path.parent / SSL_FILE
    raw = read_yaml_file(ssl_path, what="pretrain, recipes and evaluate")
    if "methods" in raw or "seeds" in raw:
        raise UserError(f"{ssl_path} must be a mapping of pretrain, recipes and evaluate (which recipes run, "
                        f"and with which seeds, is ssl.methods and ssl.seeds in {params_path.name})")
    runs = params.get("ssl") or {}
    return load_ssl({"methods": runs.get("methods") or [], "seeds": runs.get("seeds", [0]), **raw},
                    params.get("train") or {})
