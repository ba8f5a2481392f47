"""Data-efficiency curves: a run's training split cut to k images a class, drawn with its seed, the
validation and test splits the same at every size; the publisher's curves and where one passes
another."""

from __future__ import annotations

import numpy as np
import pytest

from smallvision.core.errors import UserError
from smallvision.core.prepared import load_prepared
from smallvision.publish.curves import WHOLE, crossovers, curves, section
from smallvision.publish.model import Arm, Page, Split
from tests.conftest import multilabel_arrays, write_prepared


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (200, 3, 8, 8), dtype=np.uint8)
    labels = np.repeat(np.arange(4), 50)
    return load_prepared("demo", folder=write_prepared(tmp_path / "demo", images, labels, list("abcd")))


def test_validation_and_test_are_the_same_at_every_size_and_the_subset_is_the_seeds(data):
    subsets = {(k, seed): data.with_train_per_class(k, seed) for k in (1, 5) for seed in (0, 1)}
    for subset in subsets.values():
        for split in ("val", "test"):  # the same images, labels and files at every size and seed
            assert np.array_equal(subset[split].images, data[split].images)
            assert np.array_equal(subset[split].labels, data[split].labels)
            assert subset.files[split] == data.files[split]
    for (k, _), subset in subsets.items():
        assert np.bincount(subset["train"].labels).tolist() == [k] * 4  # k of each class
        assert set(subset.files["train"]) <= set(data.files["train"])
    assert subsets[(5, 0)].files["train"] != subsets[(5, 1)].files["train"]  # each seed draws its own
    assert data.with_train_per_class(5, 0).files["train"] == subsets[(5, 0)].files["train"]  # the same seed, the same
    assert data.with_train_per_class(None, 0) is data
    assert len(data.with_train_per_class(1000, 0)["train"]) == len(data["train"])  # a small class keeps all it has


def test_a_multilabel_dataset_has_no_images_per_class_to_cut_to(tmp_path):
    images, targets = multilabel_arrays(count=40, size=8)
    data = load_prepared("ml", folder=write_prepared(tmp_path / "ml", images, targets, list("wxyz")))
    with pytest.raises(UserError, match="multi-label"):
        data.with_train_per_class(2, 0)


def point(name: str, k, accuracies: list[float]) -> Arm:
    seeds = [str(seed) for seed in range(len(accuracies))]
    return Arm(f"{name}_k{k}" if k != WHOLE else name, "d", name, "supervised", "ours",
               per_seed={"accuracy": dict(zip(seeds, accuracies))}, train_per_class=None if k == WHOLE else k, curve=name)


def test_the_page_tables_each_curve_and_names_where_one_passes_another():
    arms = [point("probe", 1, [0.30, 0.31, 0.29]), point("probe", 5, [0.50, 0.52, 0.51]), point("probe", WHOLE, [0.7] * 3),
            point("finetune", 1, [0.10, 0.12, 0.11]), point("finetune", 5, [0.55, 0.58, 0.56]),
            point("finetune", WHOLE, [0.9] * 3)]
    page = Page("toy", "", "current", "", {}, 0.95, {"d": Split("d", None, 4, 40, 8, 8, "s")}, arms)
    found = curves(page, arms)
    assert set(found) == {"probe", "finetune"} and set(found["probe"]) == {1, 5, WHOLE}
    assert crossovers(found) == ["- `finetune` passes `probe` at 5 image(s) per class (below it at 1, above from there "
                                 "on, by mean test accuracy; the difference there: +0.053 ± 0.014, above)"]
    table = "\n".join(section(page, "d", arms))
    assert "| approach | 1 | 5 | all |" in table and "| `finetune` | 0.110 ± " in table
