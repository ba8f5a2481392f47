"""The training loop: resume after a kill, early stopping, registries, augmentation."""

from __future__ import annotations

import json
import signal
import sys

import numpy as np
import pytest
import torch
import yaml

from smallvision.core.paths import RunPaths, eval_dir, run_complete, run_paths
from smallvision.core.prepared import load_prepared
from smallvision.data.prepare import prepare_dataset
from smallvision.fit.augment import AugmentConfig, Augmenter, random_translate
from smallvision.fit.optim import (
    OPTIMIZERS,
    SCHEDULES,
    OptimizerConfig,
    SchedulerConfig,
    make_optimizer,
    make_schedule,
)
from smallvision.models import device as device_settings
from smallvision.models.device import use_bf16
from smallvision.options.params import DatasetConfig, load_params, run_name
from smallvision.options.schema import options
from smallvision.options.train import EarlyStoppingConfig
from smallvision.train.early_stopping import EarlyStopping
from smallvision.train.loop import Trainer
from smallvision.train.losses import LOSSES, LossConfig, make_loss
from tests.conftest import REPO, make_image_folder, python_env, run, run_stage

RECIPE = {
    "model": {"backbone": {"name": "cnn", "widths": [8, 16]}, "head": {"hidden": [16], "dropout": 0.3}},
    "epochs": 3,
    "batch_size": 16,
    "augment": {"translate": 2, "hflip": True, "brightness": 0.2, "mixup_alpha": 0.4, "mix_prob": 0.5},
    "scheduler": {"name": "cosine", "warmup_epochs": 0.5},
    "checkpoint_seconds": 0,  # resume state after every epoch: the kill tests kill after epoch 1
}


RUN = ("demo", "tiny", 0)  # the project's one run: dataset, recipe, seed
PATHS = run_paths(*RUN)  # where it writes, relative to the project


@pytest.fixture
def project(tmp_path):
    """A minimal project: params.yaml with one prepared dataset and one run of one recipe."""
    make_image_folder(tmp_path / "images", {"a": 20, "b": 20, "c": 20})
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["datasets"] = {"demo": {"root": str(tmp_path / "images"), "image_size": 16}}
    params["runs"] = {run_name(*RUN): {"dataset": "demo", "recipe": "tiny", "seed": 0, "defaults": "train"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    set_recipe(tmp_path, RECIPE)
    prepare_dataset("demo", DatasetConfig(root=str(tmp_path / "images"), image_size=16, workers=1),
                    tmp_path / "data" / "prepared" / "demo")
    return tmp_path


def set_recipe(project, recipe: dict) -> None:
    """The project's recipe `tiny` (recipes.yaml)."""
    (project / "recipes.yaml").write_text(yaml.safe_dump({"tiny": recipe}))


def tiny_recipe(project) -> dict:
    return yaml.safe_load((project / "recipes.yaml").read_text())["tiny"]


def train(project, kill_after: int | None = None):
    """The train stage, or with `kill_after` the same killed by SIGKILL after that epoch (tests.kill_after)."""
    env = python_env()
    env["PYTHONPATH"] = str(REPO)
    runner = ["-m", "tests.kill_after", str(kill_after)] if kill_after else ["-m"]
    return run(["python", *runner, "stages.train", run_name(*RUN)], cwd=project, check=not kill_after, env=env)


def history(project) -> list[dict]:
    summary = json.loads((project / PATHS.log_dir / "train.json").read_text())
    metrics = json.loads((project / PATHS.log_dir / "metrics.json").read_text())
    return summary, metrics


# airbench's options, small: whitening stem, Dirac init, shift-only norms, max-pooled scaled logits,
# norms at a larger rate, the triangle schedule and lookahead (whose average the checkpoint must hold).
AIRBENCH_STYLE = {
    **RECIPE,
    "model": {"backbone": {"name": "cnn", "widths": [8, 16], "blocks": 2, "pool_position": "after_first_conv",
                           "activation": "gelu", "stem": "whiten", "init": "dirac", "norm_scale": False,
                           "norm_momentum": 0.4},
              "head": {"pool": "max", "logit_scale": 0.2}},
    "optimizer": {"name": "sgd", "lr": 0.2, "momentum": 0.85, "weight_decay": 0.001, "norm_lr_scale": 8,
                  "decay_norm_and_bias": True},
    "scheduler": {"name": "triangle", "start_lr_ratio": 0.2, "pct_start": 0.25, "min_lr_ratio": 0.1},
    "lookahead": {"every": 2},
    "augment": {"translate": 2, "hflip": True},
    "tta": "hflip_translate",
}


def test_killed_run_resumes_and_matches_an_uninterrupted_run(project, tmp_path_factory):
    """SIGKILL after epoch 1; rerunning resumes at epoch 2 and ends exactly where a run
    that was never interrupted ends (CPU)."""
    assert_resumed_run_matches_an_uninterrupted_one(project, tmp_path_factory)


def test_a_killed_airbench_style_run_resumes_exactly_too(project, tmp_path_factory):
    set_recipe(project, AIRBENCH_STYLE)
    assert_resumed_run_matches_an_uninterrupted_one(project, tmp_path_factory)
    env = python_env()
    env["PYTHONPATH"] = str(REPO)
    run(["python", "-m", "stages.evaluate", run_name(*RUN)], cwd=project, env=env)  # with its multi-crop TTA
    assert 0 <= json.loads((project / eval_dir(*RUN) / "metrics.json").read_text())["accuracy"] <= 1


def assert_resumed_run_matches_an_uninterrupted_one(project, tmp_path_factory):
    other = tmp_path_factory.mktemp("uninterrupted")
    for name in ("params.yaml", "recipes.yaml", "data"):
        source = project / name
        (other / name).write_text(source.read_text()) if source.is_file() else \
            __import__("shutil").copytree(source, other / name)
    train(other)
    expected_summary, expected_metrics = history(other)

    killed = train(project, kill_after=1)
    assert killed.returncode == -signal.SIGKILL
    assert (project / PATHS.resume_dir / "state.pt").exists()
    assert not (project / PATHS.model_dir / "best.pt").exists()  # no result before the run ends
    # The live log of the killed run: its last epoch's figures, never to be taken for a finished run's.
    live = json.loads((project / PATHS.log_dir / "metrics.json").read_text())
    assert live["complete"] is False and live["step"] == 1 and "val_accuracy" in live
    assert not run_complete(project / PATHS.log_dir)
    resumed = train(project)
    assert "resuming from the checkpoint after epoch 1" in resumed.stdout
    summary, metrics = history(project)
    assert summary["epochs_run"] == expected_summary["epochs_run"] == 3
    assert summary["final"] == {**expected_summary["final"], "seconds": summary["final"]["seconds"]}
    assert {k: v for k, v in metrics.items() if k != "seconds"} == \
        {k: v for k, v in expected_metrics.items() if k != "seconds"}
    assert metrics["complete"] is True and metrics["step"] == 3 and run_complete(project / PATHS.log_dir)
    steps = (project / PATHS.log_dir / "plots/metrics/val_accuracy.tsv").read_text().splitlines()
    assert len(steps) == 4  # header + one row per epoch: the log was rebuilt, not duplicated
    assert {p.name for p in (project / PATHS.model_dir).iterdir()} == {"best.pt", "best.pt.sha256"}
    assert not (project / PATHS.resume_dir).exists()  # resume state goes when the run ends


def test_changed_recipe_does_not_resume_a_stale_checkpoint(project):
    train(project, kill_after=1)
    set_recipe(project, {**tiny_recipe(project), "optimizer": {"lr": 0.01}})
    result = train(project)
    assert "resuming" not in result.stdout
    assert history(project)[0]["epochs_run"] == 3


def test_no_resume_state_is_written_before_checkpoint_seconds_have_passed(project):
    set_recipe(project, {**tiny_recipe(project), "checkpoint_seconds": 3600})
    killed = train(project, kill_after=2)
    assert killed.returncode == -signal.SIGKILL
    assert not (project / PATHS.resume_dir).exists()
    assert "resuming" not in train(project).stdout


def test_early_stopping_patience_and_min_epochs():
    stopper = EarlyStopping(EarlyStoppingConfig(monitor="val_loss", patience=2, min_epochs=5))
    for value in [1.0, 0.9, 0.95, 0.96]:
        stopper.update(value)
    assert stopper.should_stop() is None  # patience is exhausted but min_epochs is not reached
    stopper.update(0.97)
    assert "no val_loss improvement" in stopper.should_stop()
    assert stopper.best_epoch == 1


def test_early_stopping_on_spread():
    stopper = EarlyStopping(EarlyStoppingConfig(monitor="val_accuracy", spread_window=3, spread_tolerance=0.01))
    for value in [0.5, 0.8, 0.901, 0.905]:
        stopper.update(value)
        assert stopper.should_stop() is None
    stopper.update(0.903)
    assert "spread" in stopper.should_stop()


SCHEDULE_OPTIONS = {"cosine": {"warmup_epochs": 1}, "step": {"step_size": 1}}


@pytest.mark.parametrize("optimizer", OPTIMIZERS.names())
@pytest.mark.parametrize("schedule", SCHEDULES.names())
def test_every_optimizer_and_schedule_steps(optimizer, schedule):
    from tests.test_models import model

    net = model({"backbone": {"name": "cnn", "widths": [4]}})
    opt = make_optimizer(net, options(OptimizerConfig, name=optimizer, lr=0.1, weight_decay=0.01))
    sched = make_schedule(opt, options(SchedulerConfig, name=schedule, **SCHEDULE_OPTIONS.get(schedule, {})),
                          epochs=3, steps_per_epoch=2, monitor_mode="min")
    lrs = []
    for epoch in range(3):
        for _ in range(2):
            net(torch.rand(2, 3, 32, 32)).sum().backward()
            opt.step()
            sched.after_step()
        sched.after_epoch(1.0)
        lrs.append(opt.param_groups[0]["lr"])
    if schedule == "none":
        assert lrs == [0.1] * 3
    if schedule in ("cosine", "step", "onecycle"):
        assert lrs[-1] < max(lrs)
    # Weight decay goes to weights only, never to biases or norms.
    assert {g["weight_decay"] for g in opt.param_groups if g["params"][0].ndim == 1} == {0.0}


def test_losses():
    logits = torch.randn(8, 4)
    targets = torch.randint(0, 4, (8,))
    counts = torch.ones(4)
    ce = make_loss(options(LossConfig, name="cross_entropy"), counts)(logits, targets)
    assert torch.allclose(make_loss(options(LossConfig, name="focal", gamma=0), counts)(logits, targets), ce)
    assert torch.allclose(make_loss(options(LossConfig, name="weighted_cross_entropy"), counts)(logits, targets), ce)
    rare = make_loss(options(LossConfig, name="weighted_cross_entropy"), torch.tensor([1.0, 100, 100, 100]))
    only_rare = torch.zeros(8, dtype=torch.long)
    assert rare(logits, only_rare) > 0
    assert set(LOSSES.names()) >= {"cross_entropy", "focal", "weighted_cross_entropy", "bce"}


def test_augmentation_is_reproducible_and_keeps_shapes():
    x = torch.rand(6, 3, 16, 16)
    cfg = AugmentConfig(translate=2, hflip=True, rotate=15, crop_scale=(0.5, 1.0), brightness=0.3, contrast=0.3,
                        saturation=0.3)

    def augment(seed):
        return Augmenter(cfg, torch.Generator().manual_seed(seed), np.random.default_rng(seed)).images(x)

    a, b, c = augment(0), augment(0), augment(1)
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1


def test_translate_shifts_content():
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 4, 4] = 1
    shifted = random_translate(x, 2, torch.Generator().manual_seed(3))
    assert shifted.sum() >= 1 and shifted.shape == x.shape


def test_mixing_gives_soft_targets():
    cfg = AugmentConfig(mixup_alpha=0.4, cutmix_alpha=1.0, mix_prob=1.0)
    aug = Augmenter(cfg, torch.Generator().manual_seed(0), np.random.default_rng(0))
    for _ in range(4):
        x, y = aug.mix(torch.rand(8, 3, 16, 16), torch.randint(0, 5, (8,)), 5)
        assert y.shape == (8, 5) and torch.allclose(y.sum(1), torch.ones(8))


FAULTS_OF_FREED_BLOCKS = """
import json, resource, sys, torch
from smallvision.models.device import keep_freed_memory, resolve_device
if sys.argv[1] == "cpu":
    resolve_device("cpu")

def page_faults_of_one_block():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(16 * 2**20)  # 64 MiB of float32, written, then freed
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults = [page_faults_of_one_block() for _ in range(48)]
print(json.dumps({"setting_made": sys.argv[1] == "cpu" and keep_freed_memory(), "faults": faults}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the setting is glibc's malloc's")
def test_on_the_cpu_a_freed_activation_block_is_reused_not_faulted_in_again():
    """With malloc's defaults a 64 MiB block is mapped afresh every time (a page fault per 4 KiB);
    once the loop's CPU device is resolved, a block of that size reuses a freed one. The heap takes
    a few blocks to settle (each 64-byte-aligned block leaves a hole until freed ones coalesce):
    after 4 to 7 blocks in 49 runs here, after 9 or more once in CI, so the second half of 48 counts."""
    env = {name: value for name, value in python_env().items()
           if not name.startswith("MALLOC_") and name != "GLIBC_TUNABLES"}  # a user's malloc settings win
    runs = {setting: json.loads(run(["python", "-c", FAULTS_OF_FREED_BLOCKS, setting], cwd=REPO, env=env).stdout)
            for setting in ("defaults", "cpu")}
    assert runs["cpu"]["setting_made"], runs["cpu"]
    settled = {setting: float(np.median(result["faults"][24:])) for setting, result in runs.items()}
    assert settled["cpu"] * 10 < settled["defaults"], runs


def test_bf16_is_used_where_asked_for_and_the_device_has_bf16_arithmetic(monkeypatch, capsys):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert use_bf16("auto", cuda) and use_bf16("bf16", cuda) and not use_bf16("fp32", cuda)
    assert not use_bf16("auto", cpu)  # the project's default stays fp32 on every CPU
    monkeypatch.setattr(device_settings, "cpu_has_bf16_arithmetic", lambda: True)
    assert use_bf16("bf16", cpu) and not use_bf16("fp32", cpu)
    monkeypatch.setattr(device_settings, "cpu_has_bf16_arithmetic", lambda: False)
    assert not use_bf16("bf16", cpu) and not use_bf16("bf16", torch.device("mps"))  # emulated: slower than fp32
    assert capsys.readouterr().out.count("no bf16 arithmetic: training in fp32") == 2


def test_a_bf16_recipe_trains_under_autocast_on_a_cpu_with_bf16_arithmetic(project, monkeypatch, tmp_path_factory):
    """Autocast also runs (emulated) on CPUs without the instructions, so the test runs everywhere."""
    monkeypatch.setattr(device_settings, "cpu_has_bf16_arithmetic", lambda: True)
    data = load_prepared("demo", folder=project / "data/prepared/demo")
    base = load_params(project / "params.yaml").recipe("tiny").model_copy(update={"epochs": 1})
    summaries = {}
    for precision in ("bf16", "fp32"):
        folder = tmp_path_factory.mktemp(precision)
        trainer = Trainer(base.model_copy(update={"precision": precision}), data,
                          RunPaths(folder / "model", folder / "log", folder / "resume"))
        summaries[precision] = trainer.run()
    assert summaries["bf16"]["bf16"] and not summaries["fp32"]["bf16"]
    losses = {precision: summary["final"]["train_loss"] for precision, summary in summaries.items()}
    assert np.isfinite(losses["bf16"]) and losses["bf16"] != losses["fp32"], losses  # bf16 rounding shows


def test_norm_parameters_get_their_own_learning_rate_and_the_same_decay_per_step():
    from tests.test_models import model

    net = model({"backbone": {"name": "cnn", "widths": [4], "stem": "whiten"}})
    opt = make_optimizer(net, options(OptimizerConfig, name="sgd", lr=0.5, weight_decay=0.01, norm_lr_scale=64,
                                      decay_norm_and_bias=True))
    norm = next(m for m in net.backbone if isinstance(m, torch.nn.BatchNorm2d))
    group = {id(p): g for g in opt.param_groups for p in g["params"]}
    assert group[id(norm.bias)]["lr"] == 32.0
    assert group[id(norm.bias)]["lr"] * group[id(norm.bias)]["weight_decay"] == pytest.approx(0.005)
    assert group[id(net.whitening_stem.bias)]["lr"] == 0.5  # a bias, not a norm
    assert id(net.whitening_stem.weight) not in group  # fixed


def test_triangle_schedule_corners():
    net = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(net.parameters(), lr=2.0)
    cfg = options(SchedulerConfig, name="triangle", start_lr_ratio=0.2, pct_start=0.25, min_lr_ratio=0.05)
    sched = make_schedule(opt, cfg, epochs=2, steps_per_epoch=4, monitor_mode="min")
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(8):
        opt.step()
        sched.after_step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] == pytest.approx(0.4) and lrs[2] == pytest.approx(2.0) and lrs[8] == pytest.approx(0.1)
    assert lrs[1] == pytest.approx(1.2) and lrs[5] == pytest.approx(1.05)


def test_lookahead_pulls_the_weights_to_their_average_and_ends_on_it():
    from smallvision.train.lookahead import Lookahead, LookaheadConfig

    net = torch.nn.Linear(1, 1, bias=False)
    net.weight.data.fill_(1.0)
    lookahead = Lookahead(net, LookaheadConfig(every=2, decay=0.5, power=1.0), total_steps=6)
    trajectory = []
    for target in (3.0, 5.0, 7.0, 9.0, 11.0, 13.0):
        net.weight.data.fill_(target)  # stands in for an optimiser step
        lookahead.after_step()
        trajectory.append(net.weight.item())
    # step 2: keep 0.5^2 x 2/6 = 1/12 of the average 1 -> 1/12 + 11/12 x 5; step 4: keep 0.25 x 4/6
    after_2 = 1 / 12 + 11 / 12 * 5
    after_4 = after_2 / 6 + 5 / 6 * 9
    assert trajectory == pytest.approx([3.0, after_2, 7.0, after_4, 11.0, after_4])  # ends on the average


def test_the_loop_fits_a_whitening_stem_to_the_training_images(project):
    from smallvision.models.backbones import PatchWhitening
    from smallvision.models.build import build_for_data, fitting_sample
    from smallvision.models.device import to_float_images

    set_recipe(project, AIRBENCH_STYLE)
    recipe = load_params(project / "params.yaml").recipe("tiny")
    data = load_prepared("demo", folder=project / "data/prepared/demo")
    fitted = [build_for_data(recipe, data).whitening_stem.weight for _ in range(2)]
    placeholder = build_for_data(recipe, data, statistics=False).whitening_stem.weight  # weights load next
    assert torch.equal(fitted[0], fitted[1])  # the same pick of images every time
    assert not torch.allclose(fitted[0], placeholder)
    model = build_for_data(recipe, data)  # fitted to the sample as the model normalises it
    sample = fitting_sample(data["train"].images, data.image_size)
    assert len(sample) == len(data["train"].images)  # 16 px: all of the few images here
    reference = PatchWhitening(3)
    reference.fit(model.preprocess(to_float_images(torch.as_tensor(sample))))
    assert torch.equal(model.whitening_stem.weight, reference.weight)


def test_a_runs_random_streams_do_not_replay_one_another(project, tmp_path):
    """torch.manual_seed(s) and Generator().manual_seed(s) give one and the same sequence: seeded
    with the run's seed, the batch order and the augmentation would replay the random numbers of
    the initial weights and of dropout."""
    from smallvision.models.device import stream_seed

    recipe = load_params(project / "params.yaml").recipe("tiny")
    data = load_prepared("demo", folder=project / "data/prepared/demo")
    trainer = Trainer(recipe, data, RunPaths(tmp_path / "model", tmp_path / "log", tmp_path / "resume"))
    torch.manual_seed(recipe.seed)
    draws = [torch.rand(8)] + [torch.rand(8, generator=g) for g in (trainer.generator, trainer.augment_generator)]
    assert not any(torch.equal(draws[i], draws[j]) for i, j in ((0, 1), (0, 2), (1, 2)))
    # Each process of a data-parallel run augments apart, and not as the next seed's run does.
    seeds = {stream_seed(0, "augment", 1), stream_seed(1, "augment", 0), stream_seed(0, "augment", 0),
             stream_seed(0, "order", 0)}
    assert len(seeds) == 4 and stream_seed(3, "views") == stream_seed(3, "views")


@pytest.mark.parametrize("case", ["random", "absent_class", "all_wrong", "multilabel", "multilabel_absent_label"])
def test_the_loops_macro_f1_is_scikit_learns(case):
    """The validation macro F1 (on the device) equals f1_score(average="macro") on the same
    predictions, classes that neither truth nor prediction holds included: single-label,
    scikit-learn averages over the classes that occur; multilabel, over every label."""
    from sklearn.metrics import f1_score

    from smallvision.train.validation import macro_f1

    rng = np.random.default_rng(0)
    if case.startswith("multilabel"):
        truth, predicted = (rng.random((2, 50, 5)) < 0.4).astype(np.int64)
        if case == "multilabel_absent_label":
            truth[:, 3] = predicted[:, 3] = 0
    else:
        truth, predicted = rng.integers(0, 6, (2, 50))
        if case == "absent_class":  # class 4 of 6: in neither
            truth[truth == 4], predicted[predicted == 4] = 0, 5
        elif case == "all_wrong":
            predicted = (truth + 1) % 6
    ours = macro_f1(torch.as_tensor(predicted), torch.as_tensor(truth), 6).item()
    assert ours == pytest.approx(f1_score(truth, predicted, average="macro", zero_division=0), abs=1e-6)


def test_validation_metrics_report_the_macro_f1_of_the_argmax():
    from sklearn.metrics import f1_score

    from smallvision.train.validation import validation_metrics

    rng = np.random.default_rng(1)
    logits = torch.as_tensor(rng.normal(size=(40, 4)), dtype=torch.float32)
    labels = torch.as_tensor(rng.integers(0, 4, 40))
    metrics = validation_metrics(logits, labels, torch.nn.functional.cross_entropy, 4, multilabel=False)
    predicted = logits.argmax(1).numpy()
    assert metrics["val_macro_f1"] == pytest.approx(f1_score(labels.numpy(), predicted, average="macro"), abs=1e-6)
    assert metrics["val_accuracy"] == pytest.approx((predicted == labels.numpy()).mean())


def test_the_resumable_run_saves_when_due_resumes_and_marks_its_log_complete(tmp_path):
    """The scaffold both loops share: a checkpoint only once `checkpoint_seconds` have passed
    (never after the last epoch), a rerun with the same fingerprint resumes with the saved
    records, another fingerprint starts afresh, and metrics.json says complete only at the end."""
    from smallvision.fit.resumable import STATE, ResumableRun

    paths = RunPaths(tmp_path / "model", tmp_path / "log", tmp_path / "resume")
    metrics = tmp_path / "log" / "metrics.json"

    def start(fingerprint="a", seconds=0.0):
        run = ResumableRun(paths, fingerprint, torch.device("cpu"), checkpoint_seconds=seconds)
        return run, run.resume()

    run, state = start(seconds=3600)
    assert state is None
    run.record({"epoch": 1, "train_loss": 1.0, "seconds": 2.0})
    run.end_epoch(1, last=False, state=lambda: {"x": torch.ones(1)})
    assert not (paths.resume_dir / STATE).exists()  # not due yet
    assert json.loads(metrics.read_text())["complete"] is False

    run, _ = start()
    for epoch in (1, 2):
        run.record({"epoch": epoch, "train_loss": 1.0 / epoch, "seconds": 2.0})
        run.end_epoch(epoch, last=False, state=lambda: {"x": torch.full((1,), float(epoch))})
    run, state = start()  # as a killed run started again
    assert run.start_epoch == 2 and state["x"].item() == 2.0 and run.elapsed == 4.0
    assert [r["epoch"] for r in run.history] == [1, 2]
    assert json.loads(metrics.read_text()) == {"train_loss": 0.5, "seconds": 2.0, "step": 2, "complete": False}
    run.record({"epoch": 3, "train_loss": 0.25, "seconds": 2.0})
    run.end_epoch(3, last=True, state=lambda: pytest.fail("no resume state after the last epoch"))
    assert (paths.resume_dir / STATE).exists() and torch.load(paths.resume_dir / STATE)["epoch"] == 2
    run.finish()
    assert not paths.resume_dir.exists() and json.loads(metrics.read_text())["complete"] is True

    run, _ = start()
    run.record({"epoch": 1, "train_loss": 1.0, "seconds": 2.0})
    run.end_epoch(1, last=False, state=dict)
    run, state = start("b")  # another recipe or other data: the old state goes
    assert state is None and run.start_epoch == 0 and not paths.resume_dir.exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "flipped bytes"])
def test_a_damaged_resume_state_is_set_aside_and_the_run_starts_afresh(damage, tmp_path, capsys):
    """Once, every rerun of such a run stopped in torch's traceback, naming no file (truncated,
    garbage), or resumed from it as if it were whole (flipped bytes)."""
    from smallvision.fit.resumable import STATE, ResumableRun

    paths = RunPaths(tmp_path / "model", tmp_path / "log", tmp_path / "resume")
    run = ResumableRun(paths, "a", torch.device("cpu"))
    run.resume()
    run.record({"epoch": 1, "train_loss": 1.0, "seconds": 2.0})
    run.end_epoch(1, last=False, state=lambda: {"x": torch.arange(1000.0)})
    state = paths.resume_dir / STATE
    data = state.read_bytes()
    middle = len(data) // 2
    state.write_bytes({"truncated": data[:middle], "garbage": b"garbage" * 100,
                       "flipped bytes": data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 64])
                       + data[middle + 64:]}[damage])
    capsys.readouterr()

    run = ResumableRun(paths, "a", torch.device("cpu"))
    assert run.resume() is None and run.start_epoch == 0 and run.history == []
    aside = tmp_path / "resume.damaged" / STATE
    logged = capsys.readouterr().out
    assert f"the resume state {state} is damaged" in logged and f"set aside as {aside}; the run starts afresh" in logged
    assert aside.exists() and not paths.resume_dir.exists()


def test_a_full_disk_while_saving_the_weights_is_a_message_and_no_result(project, monkeypatch, capsys):
    import errno

    from smallvision.models import weights

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    set_recipe(project, {**tiny_recipe(project), "checkpoint_seconds": 3600})  # best.pt: the first torch file
    monkeypatch.setattr(weights.torch, "save", no_space)
    with pytest.raises(SystemExit) as exit_:
        run_stage(project, "train", run_name(*RUN))
    assert exit_.value.code == 2
    assert f"no space left on the disk while writing {PATHS.model_dir / 'best.pt'}" in capsys.readouterr().err
    assert not (project / PATHS.model_dir).exists() or not any((project / PATHS.model_dir).iterdir())
    assert not run_complete(project / PATHS.log_dir)


def test_a_diverging_run_stops_with_a_message_and_is_left_incomplete(project, capsys):
    """lr 100 (the largest allowed) sends this run's weights to infinity by its third epoch: it
    stops there, names the run and the epoch, writes no model, and its log says not complete."""
    set_recipe(project, {**tiny_recipe(project), "optimizer": {"name": "sgd", "lr": 100}, "scheduler": {"name": "none"}})
    with pytest.raises(SystemExit) as exit_:
        run_stage(project, "train", run_name(*RUN))
    assert exit_.value.code == 2
    message = capsys.readouterr().err
    assert message.startswith(f"error: run {PATHS.log_dir}: its ")
    assert " in epoch " in message or " after epoch " in message  # a loss, or the weights after a last step
    assert "the training diverged. Lower its recipe's learning rate (optimizer.lr; 100 in that epoch)" in message
    assert not (project / PATHS.model_dir / "best.pt").exists()
    assert json.loads((project / PATHS.log_dir / "metrics.json").read_text())["complete"] is False


def test_a_loss_that_is_not_finite_stops_the_run_before_it_is_recorded(tmp_path):
    """Both loops record each epoch through the resumable run, which refuses a NaN or infinite loss
    (once, training ran on NaN to `complete: true` and a NaN model); the log says not complete even
    when the first epoch diverged."""
    from smallvision.core.errors import UserError
    from smallvision.fit.resumable import ResumableRun

    paths = RunPaths(tmp_path / "model", tmp_path / "log", tmp_path / "resume")
    run = ResumableRun(paths, "a", torch.device("cpu"))
    run.resume()
    with pytest.raises(UserError, match=r"its train loss is nan in epoch 1: the training diverged.*optimizer\.lr; 0\.1"):
        run.record({"epoch": 1, "train_loss": float("nan"), "lr": 0.1, "seconds": 1.0})
    assert run.history == [] and json.loads((paths.log_dir / "metrics.json").read_text()) == {"complete": False}
    with pytest.raises(UserError, match="its val loss is inf in epoch 1"):
        run.record({"epoch": 1, "train_loss": 1.0, "val_loss": float("inf"), "seconds": 1.0})
    with pytest.raises(UserError, match=r"its weights hold values that are not finite after epoch 0 \(b\)"):
        run.require_finite({"a": torch.ones(2), "b": torch.tensor([1.0, float("nan")]), "steps": torch.tensor(3)})


def test_production_code_has_no_kill_switch():
    """Tests kill a run through tests.kill_after (the scaffold's after-epoch hook), not an
    environment variable production code would read."""
    sources = [path.read_text() for path in (REPO / "smallvision").rglob("*.py")]
    assert not any("SMALLVISION_KILL" in text or "SIGKILL" in text for text in sources)
