"""Recipes (the entries of recipes.yaml): one options model per training method,
registered once in METHODS with how it trains, how its trained model predicts, and which
params.yaml block of defaults (`train` or `sklearn`) its recipes override. Torch-free: fit and
predictor are references imported on use.

    method  options      fit                                  predictor
    torch   TorchRecipe  smallvision.train.methods:fit_torch  smallvision.inference:TorchPredictor
    knn     KnnRecipe    smallvision.train.methods:fit_knn    smallvision.inference:KnnPredictor
    logreg  LogRegRecipe smallvision.train.logreg:fit_logreg  smallvision.train.logreg:LogRegPredictor
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Callable, Literal, Union

from pydantic import Field

from smallvision.augment_config import AugmentConfig
from smallvision.models.config import ModelConfig
from smallvision.registry import Registry, resolve
from smallvision.schema import AutoOnOff, Strict
from smallvision.train.config import LookaheadConfig, LossConfig, OptimizerConfig, SchedulerConfig
from smallvision.train.early_stopping import EarlyStoppingConfig


@dataclass(frozen=True)
class Method:
    """A recipe method: its options model, its fit function, its predictor class (both
    'module:attribute' references) and the params.yaml block of defaults its recipes override
    (`train` for the torch-based methods, `sklearn` for logreg).

    fit(recipe, data: PreparedData, paths: RunPaths) -> summary dict (None on a non-main
    torchrun process). The predictor class takes (recipe, data, weights path); its `WEIGHTS`
    is the file its fit leaves in the model folder."""

    name: str
    options: type
    fit_ref: str
    predictor_ref: str
    defaults: Literal["train", "sklearn"]

    def fit(self, recipe, data, paths) -> dict | None:
        return resolve(self.fit_ref)(recipe, data, paths)

    __call__ = fit  # METHODS[recipe.method](recipe, data, paths), as before the registry held options

    def predictor(self) -> type:
        return resolve(self.predictor_ref)


METHODS: Registry[Method] = Registry("method")


def method(name: str, fit: str, predictor: str, defaults: Literal["train", "sklearn"]) -> Callable[[type], type]:
    """Register the decorated options model as recipe method `name`."""

    def add(options: type) -> type:
        METHODS.register(name)(Method(name, options, fit, predictor, defaults))
        return options

    return add


def fit(recipe, data, paths) -> dict | None:
    """Train `recipe` (any method) on prepared `data`, writing under `paths` (RunPaths)."""
    return METHODS[recipe.method].fit(recipe, data, paths)


class TrainConfig(Strict):
    """Defaults for every torch recipe (`train` in params.yaml)."""

    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    seed: int = 0
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(64, ge=1)
    eval_batch_size: int = Field(256, ge=1)
    input_size: int | None = Field(None, ge=8, le=1024)
    optimizer: OptimizerConfig = {"name": "adamw"}  # type: ignore[valid-type]
    scheduler: SchedulerConfig = {"name": "cosine"}  # type: ignore[valid-type]
    loss: LossConfig = {"name": "cross_entropy"}  # type: ignore[valid-type]
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


@method("torch", fit="smallvision.train.methods:fit_torch", predictor="smallvision.inference:TorchPredictor",
        defaults="train")
class TorchRecipe(TrainConfig):
    """`tta: hflip` averages the logits of each test image and its mirror image; `hflip_translate`
    also those of the image shifted one pixel up-left and down-right (airbench's multi-crop)."""

    method: Literal["torch"] = "torch"
    model: ModelConfig
    tta: Literal["none", "hflip", "hflip_translate"] = "none"


@method("knn", fit="smallvision.train.methods:fit_knn", predictor="smallvision.inference:KnnPredictor",
        defaults="train")
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


@method("logreg", fit="smallvision.train.logreg:fit_logreg", predictor="smallvision.train.logreg:LogRegPredictor",
        defaults="sklearn")
class LogRegRecipe(Strict):
    """scikit-learn logistic regression on raw pixels (scaled to [0, 1], optionally standardised)."""

    method: Literal["logreg"]
    C: float = Field(1.0, gt=0)
    max_iter: int = Field(1000, ge=1)
    standardize: bool = True
    seed: int = 0


Recipe = Annotated[Union[tuple(METHODS[name].options for name in METHODS.names())],  # type: ignore[misc]
                   Field(discriminator="method")]


def defaults_block(method_name: str) -> str:
    """The params.yaml block that a recipe of `method_name` overrides (`train` for an unknown
    method: its validation then names the method)."""
    return METHODS[method_name].defaults if method_name in METHODS else "train"
