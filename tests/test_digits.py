"""The default dataset: scikit-learn's digits, fetched and prepared by the real stages' code."""

from __future__ import annotations

import json

from smallvision.core.prepared import load_prepared
from smallvision.data.prepare import prepare_dataset
from smallvision.options.params import load_params
from smallvision.sources import load_sources
from tests.conftest import REPO


def test_digits_fetch_and_prepare(tmp_path):
    params = load_params(REPO / "params.yaml")
    raw = tmp_path / "raw"
    raw.mkdir()
    info = load_sources(params.sources)["digits"].fetch(raw)
    assert info == {"images": 1797, "classes": 10}
    cfg = params.dataset("digits").model_copy(update={"root": str(raw)})
    summary = prepare_dataset("digits", cfg, tmp_path / "prepared")
    data = load_prepared("digits", folder=tmp_path / "prepared")
    assert summary["split_sizes"] == {"train": 1259, "val": 269, "test": 269}
    assert data.channels == 1 and data.image_size == cfg.image_size and data.classes == [str(d) for d in range(10)]
    assert data["train"].images.max() == 255  # ink scaled from 0..16 to 0..255
    assert json.loads((tmp_path / "prepared/prepare.json").read_text())["images"] == 1797
