"""Option values that must be finite or bounded, and options that would have no effect, are
refused when params are read, with the key and the reason (issue 56: `lr: .inf` trained on NaN
losses to a run marked complete)."""

from __future__ import annotations

import copy
import math

import pytest

from smallvision.core.errors import UserError
from smallvision.options.params import load_params
from smallvision.ssl.config import load_ssl
from tests.conftest import REPO, read_yaml, write_params

BASE = read_yaml(REPO / "params.yaml")
RECIPES = read_yaml(REPO / "recipes.yaml")


def refusal(tmp_path, change) -> str:
    """The message of the UserError that load_params raises after change(params, recipes)."""
    params, recipes = copy.deepcopy(BASE), copy.deepcopy(RECIPES)
    change(params, recipes)
    with pytest.raises(UserError) as err:
        load_params(write_params(tmp_path, params, recipes))
    return str(err.value)


@pytest.mark.parametrize("key, value, expected", [
    ("lr", math.inf, "cnn.optimizer.lr: Input should be a finite number"),
    ("lr", math.nan, "cnn.optimizer.lr: Input should be a finite number"),
    ("lr", 1e308, "cnn.optimizer.lr: Input should be less than or equal to 100"),
    ("weight_decay", math.inf, "cnn.optimizer.weight_decay: Input should be a finite number"),
])
def test_an_optimizer_setting_must_be_finite_and_the_rate_bounded(tmp_path, key, value, expected):
    message = refusal(tmp_path, lambda params, recipes: recipes["cnn"]["optimizer"].update({key: value}))
    assert message.startswith(f"recipes.yaml: {expected}")


@pytest.mark.parametrize("key, value", [("epochs", 1_000_000_000), ("batch_size", 100_000_000),
                                        ("eval_batch_size", 100_000_000)])
def test_epochs_and_batch_sizes_are_bounded(tmp_path, key, value):
    message = refusal(tmp_path, lambda params, recipes: recipes["cnn"].update({key: value}))
    assert message.startswith(f"recipes.yaml: cnn.{key}: Input should be less than or equal to")


def test_defaults_blocks_and_other_sections_refuse_infinity_too(tmp_path):
    message = refusal(tmp_path, lambda params, recipes: params["train"].update(checkpoint_seconds=math.inf))
    assert message.startswith("params.yaml: train.checkpoint_seconds: Input should be a finite number")
    message = refusal(tmp_path, lambda params, recipes: params["sklearn"].update(C=math.inf))
    assert "sklearn.C: Input should be a finite number" in message
    message = refusal(tmp_path, lambda params, recipes: recipes["cnn"].setdefault("augment", {}).update(
        crop_scale=[0.5, math.inf]))
    assert "cnn.augment.crop_scale" in message and "finite" in message


def test_ssl_pretraining_is_bounded_as_training_is():
    with pytest.raises(UserError, match="pretrain.epochs: Input should be less than or equal to 10000"):
        load_ssl({"pretrain": {"epochs": 1_000_000_000}, "recipes": {"simclr": {"method": "simclr"}}}, {}, {})
    with pytest.raises(UserError, match="lr: Input should be a finite number"):
        load_ssl({"pretrain": {"optimizer": {"name": "sgd", "lr": math.inf}},
                  "recipes": {"simclr": {"method": "simclr"}}}, {}, {})
