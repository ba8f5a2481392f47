"""Recipes (the entries of recipes.yaml): one options model per training method, registered in
METHODS under the name a recipe's `method` gives, with the params.yaml block of defaults its
recipes override (`train` or `sklearn`). Torch-free: each method's fit is registered against its
name by smallvision.train (METHODS.implement), its predictor by smallvision.inference
(PREDICTORS.implement).

    method    options       fit (smallvision.train)   predictor (smallvision.inference)
    torch     TorchRecipe   methods.fit_torch         TorchPredictor
    knn       KnnRecipe     methods.fit_knn           KnnPredictor
    logreg    LogRegRecipe  logreg.fit_logreg         LogRegPredictor
    majority  MajorityRecipe methods.fit_majority     MajorityPredictor
"""

from __future__ import annotations

from typing import Annotated, Callable, ClassVar, Literal, Union

from pydantic import Field

from smallvision.core.registry import Registry
from smallvision.options.augment import AugmentConfig
from smallvision.options.model import ModelConfig
from smallvision.options.schema import AutoOnOff, Strict
from smallvision.options.train import (
    EarlyStoppingConfig,
    LookaheadConfig,
    LossConfig,
    OptimizerConfig,
    SchedulerConfig,
)

# Both keyed by method name, entries the options models. fit(recipe, data: PreparedData, paths: RunPaths) ->
# summary dict (None on a non-main torchrun process); a predictor class takes (recipe, data, weights path) and
# its `WEIGHTS` is the file its fit leaves in the model folder.
METHODS: Registry[type] = Registry("method")
PREDICTORS: Registry[type] = Registry("method")


def method(name: str) -> Callable[[type], type]:
    """Register the decorated options model as recipe method `name`."""

    def add(options: type) -> type:
        METHODS.register(name)(options)
        PREDICTORS.register(name)(options)
        return options

    return add


# Bounds that catch a typo, far above any run here (200 epochs, batches of 1024): 10,000 epochs
# of a CPU-sized recipe take weeks, and one batch of 65,536 images of 224 px (10 GB of uint8) fills
# a large GPU before the model sees it (SSL pretraining shares them).
MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = 65_536


class TrainConfig(Strict):
    """Defaults for every torch recipe (`train` in params.yaml)."""

    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    seed: int = 0
    epochs: int = Field(20, ge=1, le=MAX_EPOCHS)
    batch_size: int = Field(64, ge=1, le=MAX_BATCH_SIZE)
    eval_batch_size: int = Field(256, ge=1, le=MAX_BATCH_SIZE)
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


@method("torch")
class TorchRecipe(TrainConfig):
    """`tta: hflip` averages the logits of each test image and its mirror image; `hflip_translate`
    also those of the image shifted one pixel up-left and down-right (airbench's multi-crop)."""

    defaults: ClassVar[str] = "train"  # the params.yaml block its recipes override
    method: Literal["torch"] = "torch"
    model: ModelConfig
    tta: Literal["none", "hflip", "hflip_translate"] = "none"


@method("knn")
class KnnRecipe(TrainConfig):
    """Retrieval: embed the training split with the model's backbone (pretrained as it is, or
    after fine-tuning with the training settings when `finetune` is true) and classify each
    test image by its k nearest training images. Every k in `ks` is reported; the headline
    figures use the k that scores best on the validation split."""

    defaults: ClassVar[str] = "train"
    method: Literal["knn"]
    model: ModelConfig
    finetune: bool = False
    ks: list[Annotated[int, Field(ge=1)]] = Field([2, 3, 4], min_length=1)
    knn_metric: Literal["cosine", "euclidean"] = "cosine"


@method("logreg")
class LogRegRecipe(Strict):
    """scikit-learn logistic regression on raw pixels (scaled to [0, 1], optionally standardised)."""

    defaults: ClassVar[str] = "sklearn"
    method: Literal["logreg"]
    C: float = Field(1.0, gt=0)
    max_iter: int = Field(1000, ge=1)
    standardize: bool = True
    seed: int = 0


@method("majority")
class MajorityRecipe(Strict):
    """The trivial baseline: predict the training split's most common class for every image (for
    multi-label data, each label's training share as its score, so that a label predicted for no
    image is the "no label" answer). What a results table must beat to mean anything."""

    defaults: ClassVar[str] = "sklearn"
    method: Literal["majority"]
    seed: int = 0


Recipe = Annotated[Union[tuple(METHODS[name] for name in METHODS.names())],  # type: ignore[misc]
                   Field(discriminator="method")]


def defaults_block(method_name: str) -> str:
    """The params.yaml block that a recipe of `method_name` overrides (`train` for an unknown
    method: its validation then names the method)."""
    return METHODS[method_name].defaults if method_name in METHODS else "train"
