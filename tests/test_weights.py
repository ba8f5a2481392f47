"""Weights files carry the sha256 of their content, recorded when they are written, and whatever
loads them checks it: a damaged file is named, with the stage that rebuilds it, instead of being
used (a flipped best.pt once scored 0.10 instead of 0.89 without a word, and DVC, which compares
sizes and modification times, still called it up to date)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from smallvision.core.errors import UserError
from smallvision.core.paths import BEST, RunPaths, run_name
from smallvision.core.prepared import load_prepared
from smallvision.inference import load_predictor
from smallvision.models.classifier import ModelConfig, build_model
from smallvision.options.recipes import LogRegRecipe, MajorityRecipe
from smallvision.train.methods import fit
from tests.conftest import run_stage, write_prepared
from tests.test_train import PATHS, RUN, project  # noqa: F401  (the fixture: one trained recipe's project)


def flip_bytes(path: Path, count: int = 64) -> None:
    """Invert `count` bytes in the middle of the file, keeping its size and modification time (what
    DVC looks at), as a failing disk or a stray write would."""
    stat = path.stat()
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + count] = bytes(byte ^ 0xFF for byte in data[middle:middle + count])
    path.chmod(0o644)  # DVC's outputs are read-only links into its cache
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_a_checked_file_records_its_sha256_as_sha256sum_does_and_is_verified(tmp_path):
    from smallvision.core.errors import DamagedFile
    from smallvision.core.io import verify
    from smallvision.models.weights import load_weights, save_weights

    path = tmp_path / "data/models/digits-cnn-s0" / BEST
    save_weights({"w": torch.arange(100.0)}, path)
    record = (tmp_path / "data/models/digits-cnn-s0/best.pt.sha256").read_text()
    assert record == f"{hashlib.sha256(path.read_bytes()).hexdigest()}  best.pt\n"
    assert torch.equal(load_weights(path)["w"], torch.arange(100.0))
    flip_bytes(path)
    with pytest.raises(DamagedFile, match=r"best\.pt is damaged: its content no longer matches the sha256 recorded"
                                          r".*`dvc repro -f train@digits-cnn-s0`"):
        verify(path)
    path.with_name("best.pt.sha256").unlink()
    with pytest.raises(DamagedFile, match="has no record of its checksum"):
        load_weights(path)


def test_the_advice_names_the_stage_that_wrote_the_folder(tmp_path, monkeypatch):
    from smallvision.core.paths import rebuild_advice

    monkeypatch.chdir(tmp_path)  # not a workspace whose `dvc repro` linked data/models/... into its cache

    assert rebuild_advice(Path("data/models/digits-cnn-s0/best.pt")) == "rebuild it with `dvc repro -f train@digits-cnn-s0`"
    assert rebuild_advice(tmp_path / "data/pretrained/digits-simclr-s1/backbone.pt").endswith(
        "`dvc repro -f pretrain@digits-simclr-s1`")
    assert rebuild_advice(Path("data/ssl_eval/digits-simclr-s0/probe/best.pt")).endswith(
        "`dvc repro -f ssl_evaluate@digits-simclr-s0`")
    assert "sha256sum mine.pt > mine.pt.sha256" in rebuild_advice(Path("elsewhere/mine.pt"))


def test_the_advice_for_a_file_shared_with_dvcs_cache_repairs_it_with_dvc_itself(tmp_path, monkeypatch):
    """With cache.type hardlink, bytes damaged in place damage DVC's cached copy too, and a forced rerun
    that writes the same bytes links that copy back: the advice's commands, run as given, must end with
    an intact file."""
    from smallvision.core.paths import rebuild_advice

    def dvc(*arguments):
        result = subprocess.run([sys.executable, "-m", "dvc", *arguments], cwd=tmp_path, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr + result.stdout

    folder, intact = "data/models/toy-cnn-s0", bytes(range(256)) * 64
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    dvc("init", "-q")
    dvc("config", "cache.type", "hardlink,copy")
    write = f"import os; os.makedirs('{folder}', exist_ok=True); open('{folder}/best.pt', 'wb').write(bytes(range(256)) * 64)"
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"train": {  # a run's stage, as in dvc.yaml
        "foreach": ["toy-cnn-s0"], "do": {"cmd": f"{sys.executable} -c \"{write}\"", "outs": [f"{folder}/best.pt"]}}}}))
    dvc("repro", "-q")
    weights = tmp_path / folder / "best.pt"
    weights.chmod(0o644)
    with weights.open("r+b") as handle:  # damaged in place, as a failing disk or a hand would
        handle.write(b"\xff" * 64)
    monkeypatch.chdir(tmp_path)
    commands = re.findall(r"`([^`]+)`", rebuild_advice(Path(folder) / "best.pt"))
    assert "samefile" in commands[0] and commands[-1] == "dvc repro -f train@toy-cnn-s0", commands
    for command in commands:
        subprocess.run(command.replace("dvc ", f"{sys.executable} -m dvc ", 1), shell=True, cwd=tmp_path, check=True,
                       capture_output=True)
    assert weights.read_bytes() == intact


def test_a_file_that_matches_its_record_but_is_no_torch_file_is_named_without_torchs_advice(tmp_path):
    """torch's own message for it advises weights_only=False, which would run what a tampered file holds."""
    from smallvision.core.errors import DamagedFile
    from smallvision.core.io import checked_file
    from smallvision.models.weights import load_weights

    path = tmp_path / "data/models/digits-cnn-s0" / BEST
    with checked_file(path) as handle:
        handle.write(b"not a torch file" * 10)
    with pytest.raises(DamagedFile) as error:
        load_weights(path)
    assert "is not a file torch can read" in str(error.value) and "train@digits-cnn-s0" in str(error.value)
    assert "weights_only" not in str(error.value)


def test_a_damaged_best_pt_stops_evaluate_and_predict_with_the_file_and_the_rerun(project, capsys):  # noqa: F811
    key = run_name(*RUN)
    run_stage(project, "train", key)
    best = project / PATHS.model_dir / BEST
    flip_bytes(best)
    for stage, argv in (("evaluate", [key]), ("predict", None)):
        with pytest.raises(SystemExit) as exit_:
            if stage == "evaluate":
                run_stage(project, "evaluate", *argv)
            else:
                predict(project, ["images/a/000.png", "--dataset", "demo", "--arm", "tiny", "--seed", "0"])
        assert exit_.value.code == 2
        message = capsys.readouterr().err
        assert f"{PATHS.model_dir / BEST} is damaged" in message and f"`dvc repro -f train@{key}`" in message, stage
    assert not (project / "reports/eval" / key).exists()  # nothing a reader could take for its result

    best.write_bytes(b"garbage" * 100)  # not a model file at all, its record unchanged
    with pytest.raises(SystemExit):
        run_stage(project, "evaluate", key)
    message = capsys.readouterr().err
    assert message.startswith(f"error: {PATHS.model_dir / BEST} is damaged") and "weights_only" not in message


def predict(project: Path, argv: list[str]) -> None:  # noqa: F811 (the fixture's name, as a path)
    from smallvision.predict import main

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        main(argv)


@pytest.mark.parametrize("recipe", [LogRegRecipe(method="logreg", max_iter=20), MajorityRecipe(method="majority")])
def test_the_scikit_learn_and_majority_models_are_checked_too(recipe, tmp_path):
    rng = np.random.default_rng(0)
    folder = write_prepared(tmp_path / "prepared", rng.integers(0, 255, (40, 1, 8, 8), dtype=np.uint8),
                            np.arange(40) % 2, ["a", "b"])
    data = load_prepared("demo", folder=folder)
    model_folder = tmp_path / "data/models" / f"demo-{recipe.method}-s0"
    fit(recipe, data, RunPaths(model_folder, tmp_path / "log", tmp_path / "resume"))
    load_predictor(recipe, data, model_folder)  # intact: loads
    (saved,) = [path for path in model_folder.iterdir() if not path.name.endswith(".sha256")]
    flip_bytes(saved, count=4)
    with pytest.raises(UserError, match=rf"{saved.name} is damaged.*`dvc repro -f train@demo-{recipe.method}-s0`"):
        load_predictor(recipe, data, model_folder)


def test_a_damaged_pretrained_backbone_stops_the_recipes_that_start_from_it(tmp_path):
    """SSL evaluation (and any recipe with model.backbone_init) loads the pretrained backbone.pt."""
    from smallvision.models.weights import save_weights

    spec = {"backbone": {"name": "cnn", "widths": [8, 16]}}
    path = tmp_path / "data/pretrained/demo-simclr-s0/backbone.pt"
    save_weights(build_model(ModelConfig.model_validate(spec), 3, 16, 4).backbone.state_dict(), path)
    flip_bytes(path)
    with pytest.raises(UserError, match=r"backbone\.pt is damaged.*`dvc repro -f pretrain@demo-simclr-s0`"):
        build_model(ModelConfig.model_validate({**spec, "backbone_init": str(path)}), 3, 16, 4)
