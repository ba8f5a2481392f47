"""params.yaml validation: one clear message naming the key, before anything runs."""

from __future__ import annotations

import copy

import pytest
import yaml

from smallvision.config import load_params
from smallvision.errors import UserError
from tests.conftest import REPO, run

BASE = yaml.safe_load((REPO / "params.yaml").read_text())


def check(tmp_path, change) -> str:
    params = copy.deepcopy(BASE)
    change(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(UserError) as err:
        load_params(path)
    return str(err.value)


def test_default_params_are_valid():
    params = load_params(REPO / "params.yaml")
    assert set(params.benchmark.recipes) <= set(params.recipes)
    cnn = params.recipe("cnn")
    # Recipes override the train defaults key by key.
    assert cnn.optimizer.lr == BASE["recipes"]["cnn"]["optimizer"]["lr"]
    assert cnn.optimizer.name == BASE["train"]["optimizer"]["name"]


def test_unknown_key_suggests_the_right_one(tmp_path):
    message = check(tmp_path, lambda p: p["recipes"]["cnn"]["optimizer"].update(lrr=0.1))
    assert "recipes.cnn.optimizer" in message and "'lrr'" in message and "did you mean 'lr'" in message


def test_unknown_recipe_in_benchmark(tmp_path):
    message = check(tmp_path, lambda p: p["benchmark"].update(recipes=["cnn", "effnet_fintune"]))
    assert "benchmark.recipes" in message and "did you mean 'effnet_finetune'" in message


def test_wrong_type_names_the_key(tmp_path):
    message = check(tmp_path, lambda p: p["recipes"]["mlp"].update(epochs="ten"))
    assert message.startswith("params.yaml: recipes.mlp.epochs:") and "'ten'" in message


def test_bare_on_and_off_are_the_words_not_booleans(tmp_path):
    # YAML 1.1 reads `channels_last: off` as false; the setting must still mean "off".
    path = tmp_path / "params.yaml"
    path.write_text((REPO / "params.yaml").read_text().replace("channels_last: auto ", "channels_last: off  ", 1))
    assert yaml.safe_load(path.read_text())["train"]["channels_last"] is False
    assert load_params(path).recipe("cnn").channels_last == "off"


def test_out_of_range_value(tmp_path):
    message = check(tmp_path, lambda p: p["datasets"]["digits"].update(val_fraction=0.9))
    assert "datasets.digits.val_fraction" in message and "0.9" in message


def test_error_in_defaults_is_attributed_to_the_defaults_block(tmp_path):
    message = check(tmp_path, lambda p: p["train"]["optimizer"].update(lr=0))
    assert "train.optimizer.lr" in message


def test_unknown_registry_name_suggests(tmp_path):
    message = check(tmp_path, lambda p: p["recipes"]["cnn"]["model"]["backbone"].update(name="cnnn"))
    assert "recipes.cnn.model.backbone" in message and "did you mean 'cnn'" in message
    message = check(tmp_path, lambda p: p["recipes"]["cnn"].update(scheduler={"name": "cosin"}))
    assert "did you mean 'cosine'" in message


def test_dataset_root_must_be_a_defined_source(tmp_path):
    message = check(tmp_path, lambda p: p["datasets"]["digits"].update(root="data/raw/digit"))
    assert "datasets.digits.root" in message and "did you mean 'digits'" in message


def test_stage_prints_one_line_and_exits_2(tmp_path):
    params = copy.deepcopy(BASE)
    params["recipes"]["cnn"]["optimizer"]["momentun"] = 0.5
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env_result = run(["python", "-c", f"import sys; sys.path.insert(0, {str(REPO)!r}); "
                      "import runpy; runpy.run_module('stages.validate', run_name='__main__')"],
                     cwd=tmp_path, check=False)
    assert env_result.returncode == 2
    lines = env_result.stderr.strip().splitlines()
    assert len(lines) == 1 and "momentun" in lines[0] and "did you mean 'momentum'" in lines[0]
    assert not (tmp_path / "data" / "params_ok.json").exists()
