"""The benchmark command end to end on a tiny folder: every figure it promises is measured."""

from __future__ import annotations

import json
import multiprocessing

from smallvision.bench.fresh import in_fresh_process
from tests.conftest import REPO, make_image_folder, run


def test_bench_measures_prepare_loop_and_peer(tmp_path):
    folder = make_image_folder(tmp_path / "images", {c: 12 for c in "abc"}, size=20)
    out = tmp_path / "bench.json"
    printed = run(["python", "-m", "smallvision.bench", "--folder", str(folder), "--image-size", "16",
                   "--recipes", "cnn", "--epochs", "1", "--compare-recipes", "mlp", "--compare-epochs", "2",
                   "--compare-seeds", "2", "--peer-workers", "0", "--out", str(out)], cwd=REPO)
    bench = json.loads(out.read_text())
    assert "efficiency" in printed.stdout and "faster" in printed.stdout  # the printed table
    assert bench["dataset"]["images"] == 36 and bench["prepare"]["images_per_second"] > 0
    loop = bench["loop"]["cnn"]
    assert 0 < loop["loop_efficiency"] and loop["train_seconds_per_epoch"] > 0, loop
    peer = bench["peer"]["mlp"]
    assert peer["epochs"] == 2 and peer["seeds"] == 2 and peer["speedup"] > 0
    for side in ("ours", "imagefolder_dataloader"):
        runs = peer[side]["runs"]
        assert len(runs) == 2 and all(r["wall_seconds"] > 0 and 0 <= r["test_accuracy"] <= 1 for r in runs), runs
        assert abs(peer[side]["wall_seconds"] - (runs[0]["wall_seconds"] + runs[1]["wall_seconds"]) / 2) < 0.01
    differences = [a["test_accuracy"] - b["test_accuracy"]
                   for a, b in zip(peer["ours"]["runs"], peer["imagefolder_dataloader"]["runs"])]
    difference = peer["accuracy_difference"]
    assert abs(difference["mean"] - sum(differences) / 2) < 1e-4
    assert abs(difference["standard_error"] - abs(differences[0] - differences[1]) / 2) < 1e-4
    assert difference["ours_higher"] + difference["ours_lower"] == sum(d != 0 for d in differences)
    assert "mlp seed 1: ours" in printed.stdout


def test_time_to_accuracy_trains_on_the_whole_training_split_and_reports_each_run(tmp_path):
    for split, count in (("train", 16), ("test", 6)):
        make_image_folder(tmp_path / "images" / split, {c: count for c in "abc"}, size=16, seed=len(split))
    out = tmp_path / "target.json"
    printed = run(["python", "-m", "smallvision.bench.target", "--folder", str(tmp_path / "images"),
                   "--image-size", "16", "--recipe", "cnn", "--runs", "2", "--target", "0.5",
                   "--set", "epochs=2", "--set", "model.backbone.widths=[8, 16]", "--set", "threads=1",
                   "--out", str(out)], cwd=REPO)
    result = json.loads(out.read_text())
    assert result["train_images"] == 48 and result["test_images"] == 18  # no validation split carved out
    assert [r["seed"] for r in result["runs"]] == [0, 1] and all(r["epochs"] == 2 for r in result["runs"])
    accuracies = [r["test_accuracy"] for r in result["runs"]]
    assert result["mean_test_accuracy"] == round(sum(accuracies) / 2, 4)
    assert result["reached"] == (sum(accuracies) / 2 >= 0.5)
    assert "target 0.50" in printed.stdout


def test_time_to_accuracy_names_a_wrong_override(tmp_path):
    folder = make_image_folder(tmp_path / "images", {c: 4 for c in "ab"}, size=16)
    failed = run(["python", "-m", "smallvision.bench.target", "--folder", str(folder), "--recipe", "cnn",
                  "--set", "optimizer.lrr=0.1", "--out", str(tmp_path / "t.json")], cwd=REPO, check=False)
    assert failed.returncode != 0 and "did you mean 'lr'" in failed.stderr
    assert not (tmp_path / "t.json").exists()


def test_a_fresh_process_starts_its_own_workers_the_way_this_one_does():
    """The peer's DataLoader workers start inside a fresh (spawned) process: spawned in turn, each
    would import torch again every epoch, which made the peer 4x slower than the seeds ran."""
    assert in_fresh_process(multiprocessing.get_start_method) == multiprocessing.get_start_method()
