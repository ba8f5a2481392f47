"""The benchmark command end to end on a tiny folder: every figure it promises is measured."""

from __future__ import annotations

import json

from tests.conftest import REPO, make_image_folder, run


def test_bench_measures_prepare_loop_and_peer(tmp_path):
    folder = make_image_folder(tmp_path / "images", {c: 12 for c in "abc"}, size=20)
    out = tmp_path / "bench.json"
    printed = run(["python", "-m", "smallvision.bench", "--folder", str(folder), "--image-size", "16",
                   "--recipes", "cnn", "--epochs", "1", "--compare-recipes", "mlp", "--compare-epochs", "2",
                   "--peer-workers", "0", "--out", str(out)], cwd=REPO)
    bench = json.loads(out.read_text())
    assert "efficiency" in printed.stdout and "faster" in printed.stdout  # the printed table
    assert bench["dataset"]["images"] == 36 and bench["prepare"]["images_per_second"] > 0
    loop = bench["loop"]["cnn"]
    assert 0 < loop["loop_efficiency"] and loop["train_seconds_per_epoch"] > 0, loop
    peer = bench["peer"]["mlp"]
    assert peer["epochs"] == 2 and peer["speedup"] > 0
    for side in ("ours", "imagefolder_dataloader"):
        assert peer[side]["wall_seconds"] > 0 and 0 <= peer[side]["test_accuracy"] <= 1
