"""params.yaml and recipes.yaml validation: one clear message naming the file and key, before
anything runs."""

from __future__ import annotations

import copy
import re
import shutil

import pytest
import yaml

from smallvision import profile
from smallvision.core.errors import UserError
from smallvision.options.params import load_params
from tests.conftest import REPO, read_yaml, run, write_params

BASE = read_yaml(REPO / "params.yaml")
RECIPES = read_yaml(REPO / "recipes.yaml")


def check(tmp_path, change) -> str:
    """The message of the UserError that load_params raises after change(params, recipes)."""
    params, recipes = copy.deepcopy(BASE), copy.deepcopy(RECIPES)
    change(params, recipes)
    with pytest.raises(UserError) as err:
        load_params(write_params(tmp_path, params, recipes))
    return str(err.value)


def test_default_params_are_valid():
    params = load_params(REPO / "params.yaml")
    assert {run.recipe for run in params.runs.values()} <= set(params.recipes)
    assert all(name == run.name for name, run in params.runs.items())
    cnn = params.recipe("cnn", seed=3)
    assert cnn.seed == 3  # the seed comes from the run
    # Recipes override the train defaults key by key.
    assert cnn.optimizer.lr == RECIPES["cnn"]["optimizer"]["lr"]
    assert cnn.optimizer.name == BASE["train"]["optimizer"]["name"]
    assert params.recipe("logreg").max_iter == RECIPES["logreg"]["max_iter"]  # over `sklearn`
    assert params.about("logreg").reference.results["cifar10"]["accuracy"] > 0  # catalogue.yaml


def test_unknown_key_suggests_the_right_one(tmp_path):
    message = check(tmp_path, lambda p, r: r["cnn"]["optimizer"].update(lrr=0.1))
    assert message.startswith("recipes.yaml: cnn.optimizer") and "'lrr'" in message and "did you mean 'lr'" in message


def test_unknown_recipe_in_a_run(tmp_path):
    def typo(params, recipes):
        params["runs"] = {"digits-effnet_fintune-s0": {"dataset": "digits", "recipe": "effnet_fintune", "seed": 0,
                                                       "defaults": "train"}}
    message = check(tmp_path, typo)
    assert "runs.digits-effnet_fintune-s0" in message and "did you mean 'effnet_finetune'" in message


def test_run_name_and_defaults_must_match_the_run(tmp_path):
    def misnamed(params, recipes):
        params["runs"] = {"run3": {"dataset": "digits", "recipe": "cnn", "seed": 1, "defaults": "train"}}
    assert "rename it to 'digits-cnn-s1'" in check(tmp_path, misnamed)

    def wrong_defaults(params, recipes):
        params["runs"] = {"digits-logreg-s0": {"dataset": "digits", "recipe": "logreg", "seed": 0, "defaults": "train"}}
    assert "set defaults: sklearn" in check(tmp_path, wrong_defaults)


def test_seeds_belong_to_runs_not_recipes(tmp_path):
    message = check(tmp_path, lambda p, r: r["cnn"].update(seed=1))
    assert "seeds are set per run" in message


def test_wrong_type_names_the_key(tmp_path):
    message = check(tmp_path, lambda p, r: r["mlp"].update(epochs="ten"))
    assert message.startswith("recipes.yaml: mlp.epochs:") and "'ten'" in message


def test_bare_on_and_off_are_the_words_not_booleans(tmp_path):
    # YAML 1.1 reads `channels_last: off` as false; the setting must still mean "off".
    path = write_params(tmp_path, BASE)
    path.write_text((REPO / "params.yaml").read_text().replace("channels_last: auto ", "channels_last: off  ", 1))
    assert yaml.safe_load(path.read_text())["train"]["channels_last"] is False
    assert load_params(path).recipe("cnn").channels_last == "off"


def test_out_of_range_value(tmp_path):
    message = check(tmp_path, lambda p, r: p["datasets"]["digits"].update(val_fraction=0.9))
    assert "datasets.digits.val_fraction" in message and "0.9" in message


def test_error_in_defaults_is_attributed_to_the_defaults_block(tmp_path):
    message = check(tmp_path, lambda p, r: p["train"]["optimizer"].update(lr=0))
    assert "train.optimizer.lr" in message


def test_unknown_registry_name_suggests(tmp_path):
    message = check(tmp_path, lambda p, r: r["cnn"]["model"]["backbone"].update(name="cnnn"))
    assert "cnn.model.backbone" in message and "did you mean 'cnn'" in message
    message = check(tmp_path, lambda p, r: r["cnn"].update(scheduler={"name": "cosin"}))
    assert "did you mean 'cosine'" in message


def test_dataset_root_must_be_a_defined_source(tmp_path):
    message = check(tmp_path, lambda p, r: p["datasets"]["digits"].update(root="data/raw/digit"))
    assert "datasets.digits.root" in message and "did you mean 'digits'" in message


def test_catalogue_names_only_recipes(tmp_path):
    path = write_params(tmp_path, BASE)
    (tmp_path / "catalogue.yaml").write_text("cnnn: {notes: a typo}\n")
    with pytest.raises(UserError, match="'cnnn' is not a recipe of recipes.yaml or ssl.yaml.*did you mean 'cnn'"):
        load_params(path).about("cnn")


def test_an_ssl_recipe_s_published_figure_is_the_ssl_seed_figure_only(tmp_path):
    """A catalogue entry may name an SSL recipe of ssl.yaml; its figure (a fine-tune after SSL) is
    what the SSL section sets beside ours, never the supervised figure to beat."""
    from smallvision.report.collect import seed_figure
    from smallvision.report.ssl import ssl_seed_figure

    path = write_params(tmp_path, BASE)
    reference = {"source": "seed SSL report", "results": {"digits": {"accuracy": 0.3}}}
    (tmp_path / "catalogue.yaml").write_text(yaml.safe_dump({"simclr": {"reference": reference}}))
    params = load_params(path)
    assert ssl_seed_figure(params, "digits") == {"value": 0.3, "source": "seed SSL report"}
    assert seed_figure(params, "digits") is None


def test_stage_prints_one_line_and_exits_2(tmp_path):
    recipes = copy.deepcopy(RECIPES)
    recipes["cnn"]["optimizer"]["weight_decya"] = 0.5
    write_params(tmp_path, BASE, recipes)
    env_result = run(["python", "-c", f"import sys; sys.path.insert(0, {str(REPO)!r}); "
                      "import runpy; runpy.run_module('stages.validate', run_name='__main__')"],
                     cwd=tmp_path, check=False)
    assert env_result.returncode == 2
    lines = env_result.stderr.strip().splitlines()
    assert len(lines) == 1 and "weight_decya" in lines[0] and "did you mean 'weight_decay'" in lines[0]
    assert not (tmp_path / "data" / "params_ok.json").exists()


# ---- Named options (optimizer, scheduler, loss): each kind takes its own keys ----------------

from smallvision.options.recipes import TorchRecipe  # noqa: E402
from smallvision.options.schema import deep_merge, validate  # noqa: E402

TRAIN_DEFAULTS = {"optimizer": {"name": "adamw", "lr": 0.001, "weight_decay": 0.01, "betas": [0.9, 0.99]},
                  "scheduler": {"name": "cosine", "warmup_epochs": 1}}


def torch_recipe(overrides: dict) -> TorchRecipe:
    """A torch recipe merged over TRAIN_DEFAULTS as load_params merges recipes over `train`."""
    merged = deep_merge(TRAIN_DEFAULTS, {"model": {"backbone": {"name": "cnn", "widths": [4]}}, **overrides})
    return validate(TorchRecipe, merged, where="recipes.demo")


def test_an_option_of_another_kind_is_one_error_naming_the_key():
    with pytest.raises(UserError) as err:
        torch_recipe({"scheduler": {"name": "cosine", "patience": 3}})
    message = str(err.value)
    assert message.startswith("params.yaml: recipes.demo.scheduler: unknown key 'patience'"), message
    assert "(plateau takes it); known keys: name, warmup_epochs, min_lr_ratio" in message
    with pytest.raises(UserError, match=r"recipes\.demo\.loss: unknown key 'gamma'"):
        torch_recipe({"loss": {"name": "cross_entropy", "gamma": 2.0}})  # focal's
    with pytest.raises(UserError, match=r"recipes\.demo\.optimizer: unknown key 'betas'"):
        torch_recipe({"optimizer": {"name": "sgd", "betas": [0.9, 0.9]}})


def test_a_block_naming_another_kind_replaces_the_defaults_block():
    sgd = torch_recipe({"optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.8}}).optimizer
    assert (sgd.name, sgd.lr, sgd.momentum, sgd.weight_decay) == ("sgd", 0.1, 0.8, 0.0)  # not adamw's 0.01
    assert not hasattr(sgd, "betas")
    # The same kind, named or not, overrides the defaults key by key.
    for block in ({"lr": 0.1}, {"name": "adamw", "lr": 0.1}):
        adamw = torch_recipe({"optimizer": block}).optimizer
        assert (adamw.name, adamw.lr, adamw.weight_decay, adamw.betas) == ("adamw", 0.1, 0.01, (0.9, 0.99))
    assert torch_recipe({"scheduler": {"name": "none"}}).scheduler.model_dump() == {"name": "none"}


def test_deep_merge_replaces_a_renamed_mapping_and_merges_the_others():
    base = {"optimizer": {"name": "adamw", "lr": 1, "betas": [0.9, 0.99]}, "augment": {"hflip": True}}
    merged = deep_merge(base, {"optimizer": {"name": "sgd", "momentum": 0.9}, "augment": {"translate": 2}})
    assert merged == {"optimizer": {"name": "sgd", "momentum": 0.9}, "augment": {"hflip": True, "translate": 2}}
    assert deep_merge(base, {"optimizer": {"name": "adamw", "lr": 2}})["optimizer"] == {
        "name": "adamw", "lr": 2, "betas": [0.9, 0.99]}
    assert base["optimizer"]["lr"] == 1  # inputs untouched


@pytest.mark.parametrize("block, options", [
    ("optimizer", {"name": "sgd", "lr": 1.5, "momentum": 0.85, "nesterov": True, "weight_decay": 0.001,
                   "norm_lr_scale": 64, "decay_norm_and_bias": True, "backbone_lr_scale": 0.5}),
    ("optimizer", {"name": "adam", "lr": 0.0001, "betas": [0.8, 0.9]}),
    ("optimizer", {"name": "rmsprop", "lr": 0.0001, "momentum": 0.0, "rho": 0.95}),
    ("scheduler", {"name": "plateau", "factor": 0.5, "patience": 3}),
    ("scheduler", {"name": "step", "step_size": 5, "gamma": 0.5}),
    ("scheduler", {"name": "triangle", "start_lr_ratio": 0.2, "pct_start": 0.23, "min_lr_ratio": 0.07}),
    ("scheduler", {"name": "onecycle", "pct_start": 0.3}),
    ("loss", {"name": "focal", "gamma": 1.0, "label_smoothing": 0.1}),
    ("loss", {"name": "bce", "label_smoothing": 0.1}),
])
def test_each_kind_accepts_its_own_options(block, options):
    chosen = getattr(torch_recipe({block: options}), block).model_dump()
    assert {key: chosen[key] for key in options} == {k: tuple(v) if isinstance(v, list) else v
                                                      for k, v in options.items()}


def test_an_unknown_kind_suggests_the_right_one():
    with pytest.raises(UserError) as err:
        torch_recipe({"scheduler": {"name": "cosin"}})
    assert "recipes.demo.scheduler: unknown scheduler 'cosin' (did you mean 'cosine'?)" in str(err.value)


@pytest.mark.parametrize("path, override", [("params.yaml", "train.epochs=7"),
                                            ("recipes.yaml", "cnn.optimizer.lr=0.01"),
                                            ("ssl.yaml", "recipes.simclr.temperature=0.2")])
def test_dvc_set_param_rewrites_one_line(tmp_path, path, override):
    """`dvc exp run -S` (successful or not) rewrites the whole params file with DVC's YAML writer;
    the project's files are written in its style, so only the edited line changes."""
    from dvc.utils.hydra import apply_overrides

    copy_of = tmp_path / path
    copy_of.write_text((REPO / path).read_text())
    apply_overrides(str(copy_of), [override])
    before, after = (REPO / path).read_text().splitlines(), copy_of.read_text().splitlines()
    changed = [(old, new) for old, new in zip(before, after) if old != new]
    assert len(before) == len(after) and len(changed) == 1, changed[:5]
    key, value = override.rsplit("=", 1)
    assert key.rsplit(".", 1)[1] + ": " + value in changed[0][1]


def test_study_listing_counts_runs_and_pretrainings():
    """`profile --list`: a line a study, its counts under their headers however long its name,
    and an SSL study's pretrainings counted (each SSL recipe on each dataset with each seed)."""
    header, *lines = profile.listing()
    rows = {line.split()[0]: line for line in lines}
    assert set(rows) == {path.stem for path in (REPO / "studies").glob("*.yaml")}
    runs_end, ssl_end = header.index("runs") + len("runs"), header.index("ssl") + len("ssl")
    for name, line in rows.items():
        declared = yaml.safe_load((REPO / "studies" / f"{name}.yaml").read_text())
        methods = (declared.get("ssl") or {}).get("methods") or []
        assert line[:runs_end].split()[-1].isdigit(), line
        pretrainings = len(methods) * len(declared["datasets"]) * len(declared.get("seeds", [0]))
        assert line[:ssl_end].split()[-1] == str(pretrainings), line
    assert int(rows["pokemon150_ssl"][:ssl_end].split()[-1]) > 0


@pytest.mark.parametrize("study", sorted(path.stem for path in (REPO / "studies").glob("*.yaml")))
def test_every_study_gives_valid_params(tmp_path, monkeypatch, study):
    """A study naming a missing recipe or a bad dataset key fails here, not hours into its run."""
    for name in ("params.yaml", "recipes.yaml", "catalogue.yaml", "ssl.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    for folder in set(re.findall(r"\$(\w+)", (REPO / "studies" / f"{study}.yaml").read_text())):  # the folders it names
        monkeypatch.setenv(folder, str(tmp_path / folder.lower()))
    monkeypatch.chdir(REPO)
    profile.apply(profile.read_study(study), tmp_path / "params.yaml")
    params = load_params(tmp_path / "params.yaml")
    declared = yaml.safe_load((REPO / "studies" / f"{study}.yaml").read_text())
    assert {run.dataset for run in params.runs.values()} == set(declared["runs"])
    assert {run.seed for run in params.runs.values()} == set(declared["seeds"])
    if declared.get("ssl"):  # its SSL recipes pretrain once per seed of the study
        assert params.ssl.seeds == declared["seeds"]
    profile.apply(profile.read_study(study, seeds=[0, 1]), tmp_path / "params.yaml")  # --seeds 0 1
    assert load_params(tmp_path / "params.yaml").ssl.seeds == ([0, 1] if declared.get("ssl") else [0])


def test_a_studys_test_size_reaches_params_and_is_not_inherited_by_the_next(tmp_path, monkeypatch):
    """`evaluate.test_size_scale` is a study's design: applied, it changes that one line of
    params.yaml; a study without it sets the default back; other evaluate keys are not a study's."""
    for name in ("params.yaml", "recipes.yaml", "catalogue.yaml", "ssl.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    (tmp_path / "studies").mkdir()
    base = {"seeds": [0], "sources": {"digits": {"kind": "sklearn_digits"}},
            "datasets": {"digits": {"root": "data/raw/digits"}}, "runs": {"digits": ["cnn"]}}
    for name, study in {"larger": {**base, "evaluate": {"test_size_scale": 1.25}}, "plain": base,
                        "bad": {**base, "evaluate": {"batch_size": 8}}}.items():
        (tmp_path / "studies" / f"{name}.yaml").write_text(yaml.safe_dump(study))
    monkeypatch.chdir(tmp_path)
    profile.apply(profile.read_study("plain"))
    before = (tmp_path / "params.yaml").read_text().splitlines()
    profile.apply(profile.read_study("larger"))
    after = (tmp_path / "params.yaml").read_text().splitlines()
    changed = [(old, new) for old, new in zip(before, after) if old != new]
    assert len(before) == len(after) and len(changed) == 1, changed
    assert changed[0][1].startswith("  test_size_scale: 1.25 ") and "# test at this multiple" in changed[0][1]
    assert load_params(tmp_path / "params.yaml").evaluate.test_size_scale == 1.25
    profile.apply(profile.read_study("plain"))
    assert load_params(tmp_path / "params.yaml").evaluate.test_size_scale == 1.0
    with pytest.raises(UserError, match="evaluate.batch_size is not a study's to set"):
        profile.read_study("bad")
