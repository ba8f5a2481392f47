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
from tests.conftest import REPO, read_yaml, refusal, run, write_params

BASE = read_yaml(REPO / "params.yaml")
RECIPES = read_yaml(REPO / "recipes.yaml")


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
    message = refusal(tmp_path, lambda p, r: r["cnn"]["optimizer"].update(lrr=0.1))
    assert message.startswith("recipes.yaml: cnn.optimizer") and "'lrr'" in message and "did you mean 'lr'" in message


def test_unknown_recipe_in_a_run(tmp_path):
    def typo(params, recipes):
        params["runs"] = {"digits-effnet_fintune-s0": {"dataset": "digits", "recipe": "effnet_fintune", "seed": 0,
                                                       "defaults": "train"}}
    message = refusal(tmp_path, typo)
    assert "runs.digits-effnet_fintune-s0" in message and "did you mean 'effnet_finetune'" in message


def arm_run(**entry) -> dict:
    key = f"digits-{entry.get('arm', entry['recipe'])}-s0"
    return {key: {"dataset": "digits", **entry, "seed": 0, "defaults": "train"}}


def test_an_arm_sets_a_few_keys_of_its_recipe_and_names_itself(tmp_path):
    """An arm is a recipe with keys `set` over it, merged as a recipe is over its defaults: what the
    run trains has them, the recipe itself is unchanged, and a bad key is named in params.yaml."""
    params = copy.deepcopy(BASE)
    params["runs"] = {**arm_run(recipe="cnn", arm="cnn_long", set={"epochs": 30, "optimizer": {"lr": 0.01}}),
                      **arm_run(recipe="cnn")}
    loaded = load_params(write_params(tmp_path, params))
    arm = loaded.run_recipe("digits-cnn_long-s0")
    assert (arm.epochs, arm.optimizer.lr) == (30, 0.01)
    assert arm.optimizer.weight_decay == RECIPES["cnn"]["optimizer"]["weight_decay"]  # merged key by key
    assert loaded.recipe("cnn").epochs == RECIPES["cnn"]["epochs"] == loaded.run_recipe("digits-cnn-s0").epochs
    assert loaded.recipe_of("digits", "cnn_long") == "cnn"
    message = refusal(tmp_path, lambda p, r: p.update(runs=arm_run(recipe="cnn", arm="x", set={"epoch": 3})))
    assert message.startswith("params.yaml: runs.digits-x-s0.set") and "'epoch'" in message and "did you mean 'epochs'" in message
    assert "needs a name of its own" in refusal(tmp_path, lambda p, r: p.update(runs=arm_run(recipe="cnn", set={"epochs": 3})))
    assert "may not set its recipe's seed" in refusal(
        tmp_path, lambda p, r: p.update(runs=arm_run(recipe="cnn", arm="x", set={"seed": 3})))


def test_run_name_and_defaults_must_match_the_run(tmp_path):
    def misnamed(params, recipes):
        params["runs"] = {"run3": {"dataset": "digits", "recipe": "cnn", "seed": 1, "defaults": "train"}}
    assert "rename it to 'digits-cnn-s1'" in refusal(tmp_path, misnamed)

    def wrong_defaults(params, recipes):
        params["runs"] = {"digits-logreg-s0": {"dataset": "digits", "recipe": "logreg", "seed": 0, "defaults": "train"}}
    assert "set defaults: sklearn" in refusal(tmp_path, wrong_defaults)


def test_seeds_belong_to_runs_not_recipes(tmp_path):
    message = refusal(tmp_path, lambda p, r: r["cnn"].update(seed=1))
    assert "seeds are set per run" in message


def test_wrong_type_names_the_key(tmp_path):
    message = refusal(tmp_path, lambda p, r: r["mlp"].update(epochs="ten"))
    assert message.startswith("recipes.yaml: mlp.epochs:") and "'ten'" in message


def test_bare_on_and_off_are_the_words_not_booleans(tmp_path):
    # YAML 1.1 reads `channels_last: off` as false; the setting must still mean "off".
    path = write_params(tmp_path, BASE)
    path.write_text((REPO / "params.yaml").read_text().replace("channels_last: auto ", "channels_last: off  ", 1))
    assert yaml.safe_load(path.read_text())["train"]["channels_last"] is False
    assert load_params(path).recipe("cnn").channels_last == "off"


def test_out_of_range_value(tmp_path):
    message = refusal(tmp_path, lambda p, r: p["datasets"]["digits"].update(val_fraction=0.9))
    assert "datasets.digits.val_fraction" in message and "0.9" in message


def test_error_in_defaults_is_attributed_to_the_defaults_block(tmp_path):
    message = refusal(tmp_path, lambda p, r: p["train"]["optimizer"].update(lr=0))
    assert "train.optimizer.lr" in message


def test_unknown_registry_name_suggests(tmp_path):
    message = refusal(tmp_path, lambda p, r: r["cnn"]["model"]["backbone"].update(name="cnnn"))
    assert "cnn.model.backbone" in message and "did you mean 'cnn'" in message
    message = refusal(tmp_path, lambda p, r: r["cnn"].update(scheduler={"name": "cosin"}))
    assert "did you mean 'cosine'" in message


def test_dataset_root_must_be_a_defined_source(tmp_path):
    message = refusal(tmp_path, lambda p, r: p["datasets"]["digits"].update(root="data/raw/digit"))
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
    reference = {"report": "000_1d13db0482041163.txt", "section": "3.2.2 SimCLR Experiment", "experiment": "SimCLR",
                 "results": {"digits": {"finetune_accuracy": 0.3}}}
    (tmp_path / "catalogue.yaml").write_text(yaml.safe_dump({"simclr": {"reference": reference}}))
    params = load_params(path)
    assert ssl_seed_figure(params, "digits") == {
        "value": 0.3, "source": 'SimCLR (000_1d13db0482041163.txt, "3.2.2 SimCLR Experiment")'}
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


def test_track_listing_counts_arms_runs_and_ssl_runs():
    """`profile --list`: a line a track, its counts under their headers however long its name:
    its arms, its runs (each arm with each of its seeds) and its SSL runs."""
    header, *lines = profile.listing()
    rows = {line.split()[0]: line for line in lines}
    assert set(rows) == {path.stem for path in (REPO / "tracks").glob("*.yaml")}
    runs_end, ssl_end = header.index("runs") + len("runs"), header.index("ssl") + len("ssl")
    for name, line in rows.items():
        declared = yaml.safe_load((REPO / "tracks" / f"{name}.yaml").read_text())
        seeds = declared.get("seeds", [0])
        runs = sum(len(arm.get("seeds", seeds)) * (1 + len(arm.get("per_class", [])))
                   for arm in (declared.get("arms") or {}).values())
        ssl_runs = sum(len(arm.get("seeds", seeds)) for arm in (declared.get("ssl_arms") or {}).values())
        assert line[:runs_end].split()[-1] == str(runs), line
        assert line[:ssl_end].split()[-1] == str(ssl_runs), line
    assert int(rows["pokemon150"][:ssl_end].split()[-1]) > 0


@pytest.mark.parametrize("track", sorted(path.stem for path in (REPO / "tracks").glob("*.yaml")))
def test_every_track_gives_valid_params(tmp_path, monkeypatch, track):
    """A track naming a missing recipe, a bad dataset key or an arm setting a key its recipe does
    not take fails here, not hours into its run; each arm runs once per seed, keyed by its name."""
    from smallvision.ssl.config import load_ssl_params

    for name in ("params.yaml", "recipes.yaml", "catalogue.yaml", "ssl.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    for folder in set(re.findall(r"\$(\w+)", (REPO / "tracks" / f"{track}.yaml").read_text())):  # the folders it names
        monkeypatch.setenv(folder, str(tmp_path / folder.lower()))
    monkeypatch.chdir(REPO)
    profile.apply(profile.read_track(track), tmp_path / "params.yaml")
    params, ssl = load_params(tmp_path / "params.yaml"), load_ssl_params(tmp_path / "params.yaml")
    declared = yaml.safe_load((REPO / "tracks" / f"{track}.yaml").read_text())
    for section, runs in (("arms", params.runs), ("ssl_arms", ssl.runs)):
        expected = {f"{arm['dataset']}-{name}{suffix}-s{seed}" for name, arm in (declared.get(section) or {}).items()
                    for suffix in ["", *(f"_k{k}" for k in arm.get("per_class", []))]
                    for seed in arm.get("seeds", declared["seeds"])}
        assert set(runs) == expected
    for entry in params.runs.values():  # a curve's point trains on so many images a class: its name says how many
        if entry.train_per_class is not None:
            assert entry.arm.endswith(f"_k{entry.train_per_class}")
    for key, entry in params.runs.items():  # an arm's set keys reach what it trains
        for option, value in entry.set.items():
            if not isinstance(value, dict):
                assert getattr(params.run_recipe(key), option) == value, (key, option)
    params.catalogue  # every catalogue entry names a recipe, and is valid
    profile.apply(profile.read_track(track, seeds=[0, 1]), tmp_path / "params.yaml")  # --seeds 0 1
    assert {run.seed for run in load_params(tmp_path / "params.yaml").runs.values()} <= {0, 1}


def test_a_track_may_run_some_of_its_arms(tmp_path, monkeypatch):
    """`profile TRACK --arms a b`: only those arms' runs; an arm the track lacks is named."""
    for name in ("params.yaml", "recipes.yaml", "catalogue.yaml", "ssl.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    monkeypatch.chdir(REPO)
    profile.apply(profile.read_track("default", arms=["cnn", "majority"]), tmp_path / "params.yaml")
    assert set(load_params(tmp_path / "params.yaml").runs) == {"digits-cnn-s0", "digits-majority-s0"}
    with pytest.raises(UserError, match="has no arm 'cnnn' \\(did you mean 'cnn'\\?\\)"):
        profile.read_track("default", arms=["cnnn"])


def test_a_track_arm_names_its_dataset_recipe_role_and_a_parent_that_is_an_arm(tmp_path, monkeypatch):
    (tmp_path / "tracks").mkdir()
    base = {"seeds": [0], "sources": {"digits": {"kind": "sklearn_digits"}},
            "datasets": {"digits": {"root": "data/raw/digits"}}}
    bad = {"no_role": {"dataset": "digits", "recipe": "cnn"},
           "orphan": {"dataset": "digits", "recipe": "cnn", "role": "ours", "parent": "nowhere"},
           "seed_silent": {"dataset": "digits", "recipe": "cnn", "role": "seed"}}
    monkeypatch.chdir(tmp_path)
    for name, arm in bad.items():
        (tmp_path / "tracks" / f"{name}.yaml").write_text(yaml.safe_dump({**base, "arms": {name: arm}}))
    with pytest.raises(UserError, match="`role` is missing"):
        profile.read_track("no_role")
    with pytest.raises(UserError, match="parent 'nowhere' is not an arm"):
        profile.read_track("orphan")
    with pytest.raises(UserError, match="says what differs from the report's"):
        profile.read_track("seed_silent")


def test_a_tracks_test_size_reaches_params_and_is_not_inherited_by_the_next(tmp_path, monkeypatch):
    """`evaluate.test_size_scale` is a track's design: applied, it changes that one line of
    params.yaml; a track without it sets the default back; other evaluate keys are not a track's."""
    for name in ("params.yaml", "recipes.yaml", "catalogue.yaml", "ssl.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    (tmp_path / "tracks").mkdir()
    base = {"seeds": [0], "sources": {"digits": {"kind": "sklearn_digits"}},
            "datasets": {"digits": {"root": "data/raw/digits"}},
            "arms": {"cnn": {"dataset": "digits", "recipe": "cnn", "role": "ours"}}}
    for name, track in {"larger": {**base, "evaluate": {"test_size_scale": 1.25}}, "plain": base,
                        "bad": {**base, "evaluate": {"batch_size": 8}}}.items():
        (tmp_path / "tracks" / f"{name}.yaml").write_text(yaml.safe_dump(track))
    monkeypatch.chdir(tmp_path)
    profile.apply(profile.read_track("plain"))
    before = (tmp_path / "params.yaml").read_text().splitlines()
    profile.apply(profile.read_track("larger"))
    after = (tmp_path / "params.yaml").read_text().splitlines()
    changed = [(old, new) for old, new in zip(before, after) if old != new]
    assert len(before) == len(after) and len(changed) == 1, changed
    assert changed[0][1].startswith("  test_size_scale: 1.25 ") and "# test at this multiple" in changed[0][1]
    assert load_params(tmp_path / "params.yaml").evaluate.test_size_scale == 1.25
    profile.apply(profile.read_track("plain"))
    assert load_params(tmp_path / "params.yaml").evaluate.test_size_scale == 1.0
    with pytest.raises(UserError, match="evaluate.batch_size is not a track's to set"):
        profile.read_track("bad")