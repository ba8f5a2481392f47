"""Self-supervised pretraining: views, every method's backbone loads into a fine-tune recipe,
resume after a kill, params errors, and the pretrain -> ssl_evaluate -> report pipeline."""

from __future__ import annotations

import copy
import json
import shutil
import signal
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from smallvision.core.errors import UserError
from smallvision.core.paths import RunPaths, pretrain_paths, run_complete
from smallvision.core.prepared import load_prepared
from smallvision.data.prepare import prepare_dataset
from smallvision.fit.augment import gaussian_blur, hue_shift, random_resized_crop
from smallvision.models.classifier import ModelConfig, build_model
from smallvision.options.dataset import DatasetConfig
from smallvision.options.params import SSLRunConfig
from smallvision.ssl.base import SSL_METHODS, Step
from smallvision.ssl.config import BACKBONE_FILE, KnnConfig, load_ssl
from smallvision.ssl.encoder import Encoder
from smallvision.ssl.knn import effective_rank, embedding_spread, knn_accuracies
from smallvision.ssl.pretrain import Pretrainer
from smallvision.ssl.views import ViewConfig, ViewMaker
from tests.conftest import (
    REPO,
    commit,
    copy_repo,
    edit_params,
    make_image_folder,
    multilabel_arrays,
    python_env,
    read_yaml,
    run,
    run_stage,
    runs_for,
    stages_run,
    write_prepared,
)

METHODS = ["simclr", "simsiam", "byol", "dino", "moco", "barlow_twins", "none"]
TINY_BACKBONE = {"name": "cnn", "widths": [8, 16]}
# Tiny but complete: every method-specific part runs (DINO with local crops, MoCo's bank, KoLeo).
TINY_OVERRIDES = {"dino": {"local_views": 2, "output_dim": 64, "projection_hidden": 64, "koleo_weight": 0.1},
                  "byol": {"koleo_weight": 0.1}, "moco": {"memory_bank_size": 16},
                  "simsiam": {"projection_hidden": 64, "projection_dim": 64, "prediction_hidden": 16},
                  "barlow_twins": {"projection_hidden": 64, "projection_dim": 64}}


def tiny_ssl(backbone=TINY_BACKBONE, epochs=1) -> dict:
    return {"pretrain": {"backbone": backbone, "epochs": epochs, "batch_size": 16, "monitor_every": 1, "threads": 1},
            "recipes": {m: {"method": m, **TINY_OVERRIDES.get(m, {})} for m in METHODS}}


def run_paths(folder) -> RunPaths:
    return RunPaths(folder, folder / "log", folder / "resume")


def ssl_runs(*arms: tuple[str, int], dataset: str = "demo") -> dict[str, SSLRunConfig]:
    """params.yaml's `ssl.runs` for these (recipe, seed) pairs on one dataset, by key."""
    runs = [SSLRunConfig(dataset=dataset, recipe=recipe, seed=seed) for recipe, seed in arms]
    return {run.name: run for run in runs}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("ssl")
    make_image_folder(root / "images", {"a": 16, "b": 16, "c": 16, "d": 16})
    prepare_dataset("demo", DatasetConfig(root=str(root / "images"), image_size=16, workers=1),
                    root / "prepared")
    return load_prepared("demo", folder=root / "prepared")


def test_views_are_per_sample_reproducible_and_in_range():
    x = torch.rand(8, 3, 32, 32)

    def views(seed):
        maker = ViewMaker(ViewConfig(blur_prob=(1.0, 0.5), solarize_prob=(0.0, 1.0)),
                          torch.Generator().manual_seed(seed), np.random.default_rng(seed))
        return maker.pair(x, 16)

    a, b, c = views(0), views(0), views(1)
    assert [v.shape for v in a] == [(8, 3, 16, 16)] * 2
    assert all(torch.equal(p, q) for p, q in zip(a, b)) and not torch.equal(a[0], c[0])
    assert all(0 <= v.min() and v.max() <= 1 for v in a)
    same = torch.rand(1, 3, 32, 32).expand(8, -1, -1, -1)  # one image, eight views: all different
    crops = random_resized_crop(same, 16, (0.08, 1.0), (0.75, 4 / 3), 0.5, torch.Generator().manual_seed(0))
    assert len({crop.sum().item() for crop in crops}) == 8


def test_full_crop_blur_and_hue_leave_an_image_alone_when_they_should():
    x = torch.rand(2, 3, 12, 12)
    whole = random_resized_crop(x, 12, (1.0, 1.0), (1.0, 1.0), 0.0, torch.Generator())
    assert torch.allclose(whole, x, atol=1e-5)
    assert torch.allclose(gaussian_blur(x, torch.zeros(2)), x, atol=1e-5)
    assert gaussian_blur(x, torch.full((2,), 2.0)).std() < x.std()  # blur smooths
    assert torch.allclose(hue_shift(x, 1e-9, torch.Generator()), x, atol=1e-4)


def test_knn_and_spread():
    bank = torch.eye(4).repeat(5, 1) + 0.01 * torch.randn(20, 4)
    labels = torch.arange(4).repeat(5)
    assert knn_accuracies(bank, labels, torch.eye(4), np.arange(4), 4, [3, 5]) == \
        {"knn3_accuracy": 1.0, "knn5_accuracy": 1.0}
    multi_hot = torch.nn.functional.one_hot(labels, 4)
    multi_hot[:, 0] = 1  # every image also carries label 0
    assert knn_accuracies(bank, multi_hot, torch.eye(4), multi_hot[:4].numpy(), 4, [5])["knn5_accuracy"] == 1.0
    assert embedding_spread(torch.ones(10, 8)) < 1e-3 < embedding_spread(bank)


def test_effective_rank_counts_the_directions_features_vary_along():
    """Equal variation along d orthogonal directions reads d, whatever the feature size and the
    offset all images share; one direction reads 1; features that do not vary read 0."""
    generator = torch.Generator().manual_seed(0)
    signs = torch.randint(0, 2, (600, 6), generator=generator).double() * 2 - 1
    six = torch.cat([signs, torch.zeros(600, 10)], 1) + 5.0  # 6 of 16 dimensions, shared offset
    two = torch.cat([signs[:, :2], torch.zeros(600, 14)], 1) + 5.0
    assert effective_rank(six) == pytest.approx(6, abs=0.2) and effective_rank(two) == pytest.approx(2, abs=0.1)
    assert effective_rank(signs[:, :1] * torch.arange(1.0, 9.0)) == pytest.approx(1)
    assert effective_rank(torch.ones(10, 8)) == 0.0


def test_batchnorm_recalibration_measures_the_plain_images():
    """Running statistics come from one pass over the plain images, whatever augmented views
    left there before (the mean of equal batches' means is the mean of all), and the module's
    mode and momenta are restored."""
    torch.manual_seed(0)
    encoder = Encoder(load_ssl(tiny_ssl(), {}, {}).recipe("simclr").backbone, 3, 16, [0.5] * 3, [0.25] * 3)
    first = next(m for m in encoder.modules() if isinstance(m, torch.nn.BatchNorm2d))
    first.running_mean.fill_(5.0)  # as if left by augmented views
    images = torch.randint(0, 256, (64, 3, 16, 16), dtype=torch.uint8)
    encoder.eval()
    encoder.recalibrate_batchnorm(images, 16)
    in_batches = first.running_mean.clone()
    encoder.recalibrate_batchnorm(images, 64)
    assert not torch.allclose(in_batches, torch.full_like(in_batches, 5.0))
    assert torch.allclose(in_batches, first.running_mean, atol=1e-5)
    assert not encoder.training and first.momentum == 0.1


@pytest.mark.parametrize("bn_stats", ["frozen", "recalibrate", "train"])
def test_batchnorm_statistics_policies(bn_stats, demo, tmp_path):
    """`frozen` saves the initial running statistics while the weights train; `recalibrate`
    saves those of the plain training images; `train` those the augmented views left."""
    raw = tiny_ssl()
    raw["pretrain"]["bn_stats"] = bn_stats
    trainer = Pretrainer(load_ssl(raw, {}, {}).recipe("simclr"), demo, None, KnnConfig(k=[3]), run_paths(tmp_path))
    name, first = next((name, module) for name, module in trainer.method.backbone.backbone.named_modules()
                       if isinstance(module, torch.nn.BatchNorm2d))
    initial = {key: value.clone() for key, value in first.state_dict().items()}
    trainer.run()
    saved = torch.load(tmp_path / BACKBONE_FILE, weights_only=True)
    assert not torch.equal(saved[f"{name}.weight"], initial["weight"])  # the weights trained
    plain = copy.deepcopy(trainer.method.backbone)
    plain.recalibrate_batchnorm(torch.as_tensor(demo["train"].images), trainer.recipe.eval_batch_size)
    measured = dict(plain.backbone.named_modules())[name].running_mean
    kept = torch.equal(saved[f"{name}.running_mean"], initial["running_mean"])
    remeasured = torch.allclose(saved[f"{name}.running_mean"], measured, atol=1e-5)
    assert (kept, remeasured) == {"frozen": (True, False), "recalibrate": (False, True),
                                  "train": (False, False)}[bn_stats]


@pytest.mark.parametrize("method", METHODS)
def test_every_method_pretrains_and_its_backbone_loads_into_a_finetune_recipe(method, demo, tmp_path):
    """The seed's BYOL failure made impossible: what pretrain saves is the backbone's plain
    state dict, and a fine-tune recipe built from the same backbone settings loads it. No method
    warns of deprecations on the way (lightly's DINO head did)."""
    key = f"demo-{method}-s0"
    ssl = load_ssl(tiny_ssl(), ssl_runs((method, 0)), {})
    recipe = ssl.run_recipe(key)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        summary = Pretrainer(recipe, demo, None, KnnConfig(), run_paths(tmp_path)).run()
    assert summary["epochs_run"] == (0 if method == "none" else 1)
    saved = torch.load(tmp_path / BACKBONE_FILE, weights_only=True)
    model = build_model(ModelConfig(backbone=TINY_BACKBONE, backbone_init=str(tmp_path / BACKBONE_FILE)),
                        demo.channels, demo.image_size, demo.num_classes)
    assert all(torch.equal(model.backbone.state_dict()[key], value) for key, value in saved.items())
    finetune = ssl.evaluation_recipe(key, "finetune", str(tmp_path / BACKBONE_FILE))
    assert finetune.model.backbone_init.endswith(BACKBONE_FILE) and finetune.model.freeze == "none"


def test_pretraining_without_a_validation_split_monitors_the_spread_only(tmp_path):
    """CIFAR-10 at lightly's settings trains on all 50,000 images (val_fraction 0): the
    collapse check still runs, the kNN check (which needs held-out labels) is left out."""
    make_image_folder(tmp_path / "images", {"a": 12, "b": 12})
    prepare_dataset("noval", DatasetConfig(root=str(tmp_path / "images"), image_size=16, workers=1,
                                           val_fraction=0.0), tmp_path / "prepared")
    data = load_prepared("noval", folder=tmp_path / "prepared")
    assert len(data["val"].labels) == 0
    summary = Pretrainer(load_ssl(tiny_ssl(), {}, {}).recipe("simclr"), data, None, KnnConfig(),
                         run_paths(tmp_path / "run")).run()
    assert summary["final"]["embedding_spread"] > 0 and "val_knn_accuracy" not in summary["final"]


@pytest.mark.parametrize("backbone", [{"name": "resnet18", "weights": "none", "small_stem": True},
                                      {"name": "efficientnet_lite0", "weights": "imagenet"}])
def test_real_backbones_round_trip(backbone, demo, tmp_path):
    """ResNet18 with the small-image stem from scratch, and continued pretraining of ImageNet
    EfficientNet-Lite0 (normalised with ImageNet statistics, as its fine-tune model is)."""
    recipe = load_ssl(tiny_ssl(backbone), {}, {}).recipe("byol")
    trainer = Pretrainer(recipe, demo, None, KnnConfig(k=[3]), run_paths(tmp_path))
    red_mean = 0.485 if "efficient" in backbone["name"] else demo["train"].images[:, 0].mean() / 255
    assert trainer.method.backbone.mean.flatten()[0].item() == pytest.approx(red_mean, abs=1e-3)
    trainer.run()
    build_model(ModelConfig(backbone=backbone, backbone_init=str(tmp_path / BACKBONE_FILE)), 3, 16, 4)


def test_extra_unlabeled_images_join_the_training_split(demo, tmp_path):
    from smallvision.ssl.pretrain import load_extra_images

    make_image_folder(tmp_path / "unlabeled" / "nested", {"x": 5}, size=40)
    extra = load_extra_images(str(tmp_path / "unlabeled"), DatasetConfig(image_size=16, workers=1), "ssl.recipes.s")
    assert extra.shape == (5, 3, 16, 16) and extra.dtype == np.uint8
    recipe = load_ssl(tiny_ssl(), {}, {}).recipe("simclr")
    trainer = Pretrainer(recipe, demo, extra, KnnConfig(), run_paths(tmp_path))
    assert len(trainer.images) == len(demo["train"]) + 5
    with pytest.raises(UserError, match=r"ssl\.recipes\.s\.extra_images: no images found"):
        load_extra_images(str(tmp_path / "missing"), DatasetConfig(image_size=16), "ssl.recipes.s")


def test_three_way_evaluation_of_a_multilabel_dataset(tmp_path, monkeypatch):
    """kNN, probe and fine-tune on a multi-label dataset (the sprites' types are one)."""
    from smallvision.ssl.pretrain import pretrain
    from smallvision.ssl_evaluate import evaluate_pretrained

    monkeypatch.chdir(tmp_path)
    images, labels = multilabel_arrays(count=80)
    write_prepared(tmp_path / "data/prepared/types", images, labels, ["a", "b", "c", "d"])
    data = load_prepared("types")
    ssl = load_ssl({**tiny_ssl(), "evaluate": {"probe": {"epochs": 2}, "finetune": {"epochs": 1}}},
                   ssl_runs(("byol", 0), dataset="types"), {})
    pretrain(ssl.run_recipe("types-byol-s0"), data, None, ssl.evaluate.knn, pretrain_paths("types", "byol", 0))
    metrics = evaluate_pretrained("types-byol-s0", ssl, data, 5, tmp_path / "out")
    assert {"knn20_accuracy", "knn3_accuracy", "probe_accuracy", "finetune_accuracy"} <= set(metrics)
    # and on the validation split, what an SSL arm is chosen by
    assert {"knn20_val_accuracy", "knn3_val_accuracy", "probe_val_accuracy", "finetune_val_accuracy"} <= set(metrics)
    assert json.loads((tmp_path / "out/metrics.json").read_text())["method"] == "byol"


def test_ssl_params_errors_name_the_key():
    with pytest.raises(UserError, match=r"ssl\.yaml: recipes\.x\.method: unknown SSL method 'simclrr'.*mean 'simclr'"):
        load_ssl({"recipes": {"x": {"method": "simclrr"}}}, {}, {})
    with pytest.raises(UserError, match=r"params\.yaml: ssl\.runs\.demo-byl-s0: no SSL recipe 'byl'.*did you mean 'byol'"):
        load_ssl({"recipes": {"byol": {"method": "byol"}}}, ssl_runs(("byl", 0)), {})
    with pytest.raises(UserError, match=r"ssl\.yaml: recipes\.b: unknown key 'temperature'"):
        load_ssl({"recipes": {"b": {"method": "byol", "temperature": 0.1}}}, {}, {})
    with pytest.raises(UserError, match=r"ssl\.yaml: evaluate\.probe"):
        load_ssl({"recipes": {"r": {"method": "none"}}, "evaluate": {"probe": {"epochs": 0}}}, {}, {})
    assert set(SSL_METHODS.names()) == set(METHODS)
    with pytest.raises(UserError, match=r"ssl\.yaml: recipes\.b: seeds are the runs' \(ssl\.runs in params\.yaml\)"):
        load_ssl({"recipes": {"b": {"method": "byol", "seed": 1}}}, {}, {})
    # Seeds are the runs': a stage naming a run that ssl.runs lacks, or a run keyed with another seed.
    with pytest.raises(UserError, match=r"no SSL run 'demo-b-s4' under ssl\.runs in params\.yaml "
                                        r"\(did you mean 'demo-b-s0'\?\)"):
        load_ssl({"recipes": {"b": {"method": "byol"}}}, ssl_runs(("b", 0)), {}).run("demo-b-s4")
    mislabelled = {"demo-b-s1": SSLRunConfig(dataset="demo", recipe="b", seed=0)}
    with pytest.raises(UserError, match=r"ssl\.runs\.demo-b-s1: an SSL run is named <dataset>-<arm>-s<seed>: "
                                        r"rename it to 'demo-b-s0'"):
        load_ssl({"recipes": {"b": {"method": "byol"}}}, mislabelled, {})
    for fixed in ({"name": "flatten"}, {"name": "colour_histogram"}):
        with pytest.raises(UserError, match=f"backbone '{fixed['name']}' has no weights to pretrain"):
            load_ssl({"recipes": {"b": {"method": "byol", "backbone": fixed}}}, {}, {})


def test_seed_s_of_a_pretrained_recipe_starts_from_seed_s_of_its_baseline(demo, tmp_path):
    """The pairing the report's comparisons rest on: a `none` recipe's seed is its random
    initialisation, and pretraining with the same seed starts from exactly those weights."""
    ssl = load_ssl(tiny_ssl(), ssl_runs(("none", 0), ("none", 1), ("simclr", 1)), {})

    def initial_backbone(key: str) -> dict:
        trainer = Pretrainer(ssl.run_recipe(key), demo, None, KnnConfig(), run_paths(tmp_path / key))
        return trainer.method.backbone.state_dict()

    baseline, pretrained = initial_backbone("demo-none-s1"), initial_backbone("demo-simclr-s1")
    other = initial_backbone("demo-none-s0")
    assert all(torch.equal(baseline[key], pretrained[key]) for key in baseline)
    assert not all(torch.equal(baseline[key], other[key]) for key in baseline)
    assert ssl.run_recipe("demo-simclr-s1") == ssl.recipe("simclr", 1)  # a run is its recipe at its seed
    probe = ssl.evaluation_recipe("demo-simclr-s1", "probe", BACKBONE_FILE)
    assert probe.seed == 1  # the evaluations train with the pretraining's seed


@pytest.mark.parametrize("method", ["byol", "simsiam"])
def test_the_predictor_trains_at_its_own_learning_rate_and_every_parameter_trains_once(method, demo, tmp_path):
    recipe = load_ssl({**tiny_ssl(), "pretrain": {**tiny_ssl()["pretrain"], "optimizer": {"name": "sgd", "lr": 0.05}},
                       "recipes": {"m": {"method": method, "prediction_lr_scale": 10,
                                         **TINY_OVERRIDES.get(method, {})}}}, {}, {}).recipe("m")
    pretrainer = Pretrainer(recipe, demo, None, KnnConfig(), run_paths(tmp_path))
    method_module, optimizer = pretrainer.method, pretrainer.optimizer
    lr_of = {id(param): round(group["lr"], 9) for group in optimizer.param_groups for param in group["params"]}
    trainable = [param for param in method_module.parameters() if param.requires_grad]
    assert len(lr_of) == sum(len(group["params"]) for group in optimizer.param_groups) == len(trainable)
    rates = {part: {lr_of[id(p)] for p in module.parameters()}
             for part, module in [("backbone", method_module.backbone), *method_module.head.items()]}
    assert rates == {"backbone": {0.05}, "projection": {0.05}, "prediction": {0.5}}


@pytest.mark.parametrize("method", ["dino", "byol"])
def test_koleo_weight_adds_the_spread_of_the_student_s_backbone_features_of_the_global_views(method, demo, tmp_path):
    """koleo_weight w adds w x the mean KoLeo loss of the student's backbone features of the two
    global views (not DINO's local crops, not a head's output) to the method's loss."""
    from lightly.loss import KoLeoLoss

    def build(weight):
        recipe = load_ssl({**tiny_ssl(), "recipes": {"m": {"method": method, **TINY_OVERRIDES[method],
                                                           "koleo_weight": weight}}}, {}, {}).recipe("m")
        return Pretrainer(recipe, demo, None, KnnConfig(), run_paths(tmp_path / str(weight))).method

    generator = torch.Generator().manual_seed(0)
    sizes = (16, 16, 8, 8) if method == "dino" else (16, 16)  # DINO's two local crops at half the size
    views = [torch.rand(8, 3, size, size, generator=generator) for size in sizes]
    plain, regularised = build(0.0), build(0.5)
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), regularised.state_dict().values()))
    koleo = sum(KoLeoLoss()(plain.backbone(view).float()) for view in views[:2]) / 2
    at = Step(index=0, total=1, epoch=0)
    assert torch.allclose(regularised.loss(views, at), plain.loss(views, at) + 0.5 * koleo, atol=1e-5)
    assert abs(koleo.item()) > 1e-3


def test_moco_memory_bank_larger_than_the_data_is_refused(demo, tmp_path):
    recipe = load_ssl({**tiny_ssl(), "recipes": {"m": {"method": "moco", "memory_bank_size": 4096}}}, {}, {}).recipe("m")
    with pytest.raises(UserError, match="memory_bank_size 4096 is not below"):
        Pretrainer(recipe, demo, None, KnnConfig(), run_paths(tmp_path))


def test_pretraining_saves_its_resume_state_as_the_training_loop_does(demo, tmp_path, monkeypatch):
    """The training loop's scaffold: after every epoch but the last, or once `checkpoint_seconds`
    have passed where a recipe has that setting (SSL recipes have none yet: every epoch)."""
    from smallvision.fit.resumable import ResumableRun

    saved = []
    monkeypatch.setattr(ResumableRun, "save", lambda self, done, state: saved.append((done, sorted(state))))
    recipe = load_ssl(tiny_ssl(epochs=3), {}, {}).recipe("simclr")
    Pretrainer(recipe, demo, None, KnnConfig(k=[3]), run_paths(tmp_path / "every")).run()
    assert [done for done, _ in saved] == [1, 2]
    assert {"method", "optimizer", "schedule"} <= set(saved[0][1])

    class Timed(type(recipe)):
        checkpoint_seconds: float = 3600

    saved.clear()
    Pretrainer(Timed(**recipe.model_dump()), demo, None, KnnConfig(k=[3]), run_paths(tmp_path / "timed")).run()
    assert saved == []


@pytest.fixture
def project(tmp_path):
    """The repository's params.yaml and recipes.yaml, tiny SSL recipes (ssl.yaml) and one
    prepared dataset."""
    make_image_folder(tmp_path / "images", {"a": 16, "b": 16, "c": 16})
    shutil.copy(REPO / "recipes.yaml", tmp_path / "recipes.yaml")
    params = read_yaml(REPO / "params.yaml")
    params["ssl"] = {"runs": ssl_runs_yaml(METHODS, seeds=(0,))}  # tiny_ssl's recipes are named by method
    params["datasets"]["demo"] = {"root": str(tmp_path / "images"), "image_size": 16}  # what the SSL runs name
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (tmp_path / "ssl.yaml").write_text(yaml.safe_dump(tiny_ssl(epochs=3)))
    prepare_dataset("demo", DatasetConfig(root=str(tmp_path / "images"), image_size=16, workers=1),
                    tmp_path / "data" / "prepared" / "demo")
    return tmp_path


def pretrain(project, method: str, kill_after: int | None = None):
    env = python_env()
    env["PYTHONPATH"] = str(REPO)
    runner = ["-m", "tests.kill_after", str(kill_after)] if kill_after else ["-m"]  # killed after that epoch
    result = run(["python", *runner, "stages.pretrain", f"demo-{method}-s0"], cwd=project, check=not kill_after,
                 env=env)
    return result, project / pretrain_paths("demo", method, 0).model_dir


@pytest.mark.parametrize("method", ["moco", "dino"])
def test_killed_pretraining_resumes_from_the_saved_epoch(project, tmp_path_factory, method):
    """SIGKILL after epoch 1 of 3; the rerun resumes at epoch 2 and ends exactly where an
    uninterrupted run ends: backbone, loss, kNN (MoCo's memory bank and DINO's centre and
    teacher are part of the saved state)."""
    other = tmp_path_factory.mktemp("uninterrupted")
    for name in ("params.yaml", "recipes.yaml", "ssl.yaml"):
        shutil.copy(project / name, other / name)
    shutil.copytree(project / "data", other / "data")
    _, expected = pretrain(other, method)

    killed, folder = pretrain(project, method, kill_after=1)
    assert killed.returncode == -signal.SIGKILL
    paths = pretrain_paths("demo", method, 0)
    resume, log = project / paths.resume_dir, project / paths.log_dir
    assert (resume / "state.pt").exists() and not (folder / BACKBONE_FILE).exists()
    live = json.loads((log / "metrics.json").read_text())
    assert live["complete"] is False and live["step"] == 1 and not run_complete(log)  # a killed run's live log
    resumed, _ = pretrain(project, method)
    assert "resuming from the checkpoint after epoch 1" in resumed.stdout
    assert not resume.exists()  # a finished run leaves no resume state
    summary, reference = (json.loads((f / "pretrain.json").read_text()) for f in (folder, expected))
    assert summary["epochs_run"] == 3
    assert {k: v for k, v in summary["final"].items() if k not in ("seconds", "images_per_second")} == \
        {k: v for k, v in reference["final"].items() if k not in ("seconds", "images_per_second")}
    state, reference_state = (torch.load(f / BACKBONE_FILE, weights_only=True) for f in (folder, expected))
    assert all(torch.equal(state[key], reference_state[key]) for key in state)
    steps = (log / "plots/metrics/train_loss.tsv").read_text().splitlines()
    assert len(steps) == 4  # header + one row per epoch: the log was rebuilt, not duplicated
    assert run_complete(log) and json.loads((log / "metrics.json").read_text())["step"] == 3


SSL_RECIPES = ["simclr", "simsiam", "byol", "dino", "moco", "barlow_twins", "random"]  # every method, and none


def ssl_runs_yaml(recipes, seeds) -> dict:
    """params.yaml's `ssl.runs` for these SSL recipes on `demo`, each with these seeds."""
    return {f"demo-{recipe}-s{seed}": {"dataset": "demo", "recipe": recipe, "seed": seed}
            for recipe in recipes for seed in seeds}


def tiny_ssl_project(tmp_path) -> Path:
    """A committed copy of the repo: one 64-image dataset, logreg as its run, and every SSL
    recipe of SSL_RECIPES at tiny settings."""
    make_image_folder(tmp_path / "images", {"a": 16, "b": 16, "c": 16, "d": 16})
    repo = copy_repo(tmp_path / "repo")

    def tiny(params, recipes):
        params["datasets"] = {"demo": {"root": str(tmp_path / "images"), "image_size": 16}}
        params["runs"] = runs_for("demo", ["logreg"], definitions=recipes)
        params["evaluate"]["timing_repeats"] = 1

    edit_params(repo, tiny)
    ssl = read_yaml(repo / "ssl.yaml")
    ssl["pretrain"].update(backbone=TINY_BACKBONE, epochs=2, batch_size=16, monitor_every=1)
    for name, overrides in TINY_OVERRIDES.items():
        ssl["recipes"][name].update(overrides)
    ssl["recipes"]["random"]["backbone"] = TINY_BACKBONE
    ssl["evaluate"]["probe"]["epochs"] = 5
    ssl["evaluate"]["finetune"]["epochs"] = 1
    (repo / "ssl.yaml").write_text(yaml.safe_dump(ssl, sort_keys=False))
    commit(repo, "tiny")
    return repo


def test_every_method_through_the_stage_scripts(tmp_path):
    """Every method, at tiny settings, through the stage scripts (run in this process, as
    conftest's every_recipe does): pretrain, the three-way evaluation (whose probe and fine-tune
    load the backbone through model.backbone_init), and the report's SSL section."""
    repo = tiny_ssl_project(tmp_path)
    edit_params(repo, lambda params, _: params["ssl"].update(runs=ssl_runs_yaml(SSL_RECIPES, seeds=(0,))))
    for stage, *arguments in [("validate",), ("prepare", "demo"), ("train", "demo-logreg-s0"),
                              ("evaluate", "demo-logreg-s0")]:
        run_stage(repo, stage, *arguments)
    for method in SSL_RECIPES:
        run_stage(repo, "pretrain", f"demo-{method}-s0")
        run_stage(repo, "ssl_evaluate", f"demo-{method}-s0")
    run_stage(repo, "report")
    for method in SSL_RECIPES:
        metrics = json.loads((repo / f"reports/eval/ssl-demo-{method}-s0/metrics.json").read_text())
        for key in ("knn20_accuracy", "knn3_accuracy", "probe_accuracy", "finetune_accuracy", "embedding_spread",
                    "embedding_rank_start", "embedding_rank", "pretrain_images_per_second",
                    "knn20_val_accuracy", "knn3_val_accuracy", "probe_val_accuracy", "finetune_val_accuracy"):
            assert key in metrics, (method, key)
        state = torch.load(repo / f"data/pretrained/demo-{method}-s0/backbone.pt", weights_only=True)
        assert all(isinstance(value, torch.Tensor) for value in state.values())
    page = (repo / "reports/index.html").read_text()
    assert "Self-supervised pretraining" in page and "barlow_twins" in page
    assert "| simclr | simclr | cnn (none) | 0 |" in (repo / "reports/README.md").read_text()


def test_pretrain_evaluate_and_report_through_dvc_exp_run(tmp_path):
    """One method and its baseline over two seeds through `dvc exp run`, the report pairing the
    seeds; a third seed then leaves every stage of the first two up to date."""
    repo = tiny_ssl_project(tmp_path)
    assert "pretrain" not in run(["dvc", "stage", "list"], cwd=repo).stdout  # opt-in: none by default
    settings = [f"+ssl.runs.{key}={{dataset: demo, recipe: {run_['recipe']}, seed: {run_['seed']}}}"
                for key, run_ in ssl_runs_yaml(["simclr", "random"], seeds=(0, 1)).items()]
    result = run(["dvc", "exp", "run", *(part for setting in settings for part in ("-S", setting))], cwd=repo)
    assert {f"{stage}@demo-{method}-s{seed}" for stage in ("pretrain", "ssl_evaluate")
            for method in ("simclr", "random") for seed in (0, 1)} | {"report"} <= stages_run(result.stdout)
    first, other = (torch.load(repo / f"data/pretrained/demo-random-s{seed}/backbone.pt", weights_only=True)
                    for seed in (0, 1))
    assert not all(torch.equal(first[key], other[key]) for key in first)  # seed 1 is another initialisation
    assert "| simclr | simclr | cnn (none) | 0, 1 |" in (repo / "reports/README.md").read_text()

    # The README's "two more seeds" form: what `dvc exp run` would rerun is what `dvc status` lists.
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["ssl"]["runs"].update(ssl_runs_yaml(["simclr", "random"], seeds=(2,)))
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stale = {name.split(":")[-1] for name in json.loads(run(["dvc", "status", "--json"], cwd=repo).stdout)}
    assert {name for name in stale if name.startswith(("pretrain", "ssl_evaluate"))} == \
        {"pretrain@demo-simclr-s2", "pretrain@demo-random-s2", "ssl_evaluate@demo-simclr-s2",
         "ssl_evaluate@demo-random-s2"}


def test_pretraining_refuses_a_whitening_stem_it_could_not_fit():
    from smallvision.models.backbones import CNNBackbone

    with pytest.raises(UserError, match="stem: whiten is not supported in pretraining"):
        Encoder(CNNBackbone(name="cnn", widths=[4], stem="whiten"), 3, 16, [0.5] * 3, [0.25] * 3)


def test_pretraining_that_diverges_stops_with_a_message_and_saves_no_backbone(demo, tmp_path):
    """The training loop's rule (smallvision.fit.resumable): a loss that is not finite ends the run,
    naming it and the epoch, with its log not complete and no backbone.pt for a fine-tune to load."""
    trainer = Pretrainer(load_ssl(tiny_ssl(), {}, {}).recipe("simclr"), demo, None, KnnConfig(k=[3]),
                         run_paths(tmp_path))
    loss = trainer.method.loss
    trainer.method.loss = lambda views, at: loss(views, at) * float("nan")
    with pytest.raises(UserError, match=rf"run {tmp_path / 'log'}: its train loss is nan in epoch 1: the training "
                                        "diverged"):
        trainer.run()
    assert not (tmp_path / BACKBONE_FILE).exists() and not run_complete(tmp_path / "log")
