"""Option values that must be finite or bounded, and options that would have no effect, are
refused when params are read, with the key and the reason (issue 56: `lr: .inf` trained on NaN
losses to a run marked complete; `head: {dropout: 0.3}` built no dropout layer)."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from smallvision.core.errors import UserError
from smallvision.options.model import ModelConfig
from smallvision.ssl.config import load_ssl
from tests.conftest import REPO, read_yaml, refusal

BASE = read_yaml(REPO / "params.yaml")
RECIPES = read_yaml(REPO / "recipes.yaml")


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


def test_head_dropout_without_a_hidden_layer_is_refused_with_the_setting_that_works(tmp_path):
    """`head: {dropout: 0.3}` on a head without hidden layers built no dropout layer, silently:
    dropout follows each hidden layer. input_dropout (before the output layer here) is what works."""
    import torch

    from smallvision.models.classifier import build_model

    message = refusal(tmp_path, lambda params, recipes: recipes["cnn"]["model"].update(head={"dropout": 0.3}))
    assert message.startswith("recipes.yaml: cnn.model.head: dropout: 0.3 would do nothing: it follows each hidden "
                              "layer, and this head has none (hidden: []). For dropout before the output layer, set "
                              "input_dropout: 0.3 instead of dropout; or add a hidden layer")

    def dropouts(head: dict) -> list[float]:
        model = build_model(ModelConfig.model_validate({"backbone": {"name": "cnn", "widths": [8]}, "head": head}),
                            3, 16, 4)
        return [layer.p for layer in model.head.modules() if isinstance(layer, torch.nn.Dropout)]

    assert dropouts({"input_dropout": 0.3}) == [0.3]
    assert dropouts({"hidden": [16], "dropout": 0.3}) == [0.3]
    with pytest.raises(ValidationError, match="less than 1"):
        ModelConfig.model_validate({"backbone": {"name": "cnn"}, "head": {"hidden": [16], "dropout": 1.5}})
