"""Derived datasets as prepare options: class subsets, per-class limits, Pokémon type targets,
objects pasted on photographs, silhouette crops."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml
from PIL import Image

from smallvision.core.errors import UserError
from smallvision.core.prepared import load_prepared
from smallvision.data.derive import (
    CompositeConfig,
    SilhouetteCropConfig,
    paste_on_photo,
    silhouette_crop,
    with_alpha,
)
from smallvision.data.prepare import prepare_dataset
from smallvision.options.params import DatasetConfig, load_params
from tests.conftest import REPO, make_image_folder, shared_path, write_params


def config(root, **overrides) -> DatasetConfig:
    return DatasetConfig(**{"root": str(root), "image_size": 16, "workers": 1, **overrides})


def sprite(size: int = 40, box=(8, 12, 24, 30), colour=(220, 40, 40)) -> np.ndarray:
    """A sprite-like image: a coloured shape with a dark outline on white."""
    image = np.full((size, size, 3), 255, np.uint8)
    left, top, right, bottom = box
    image[top:bottom, left:right] = (10, 10, 10)
    image[top + 1:bottom - 1, left + 1:right - 1] = colour
    return image


def sprite_folder(root, counts: dict[str, int]):
    for label, (name, count) in enumerate(counts.items()):
        (root / name).mkdir(parents=True)
        for i in range(count):
            colour = ((60 * label) % 256, 200 - 10 * i, 90)
            Image.fromarray(sprite(colour=colour, box=(4 + i % 5, 6, 28, 30))).save(root / name / f"{i}.png")
    return root


def test_class_subset_and_a_misspelt_class(image_folder, tmp_path):
    summary = prepare_dataset("sub", config(image_folder, classes=["gamma", "alpha"]), tmp_path / "a")
    assert summary["classes"] == 2 and summary["images"] == 24
    assert load_prepared("sub", folder=tmp_path / "a").classes == ["alpha", "gamma"]
    with pytest.raises(UserError, match=r"datasets.sub.classes: no class folder 'gama' \(did you mean 'gamma'\?\)"):
        prepare_dataset("sub", config(image_folder, classes=["gama"]), tmp_path / "b")


def test_min_and_max_per_class(tmp_path):
    root = make_image_folder(tmp_path / "root", {"big": 20, "mid": 10, "tiny": 2})
    summary = prepare_dataset("caps", config(root, min_per_class=5, max_per_class=8), tmp_path / "a")
    assert summary["classes"] == 2 and summary["images"] == 16  # tiny dropped, big and mid capped at 8
    again = prepare_dataset("caps", config(root, min_per_class=5, max_per_class=8), tmp_path / "b")
    files = [load_prepared("caps", folder=tmp_path / out).files for out in ("a", "b")]
    assert files[0] == files[1] and again["images"] == 16  # the pick is fixed by split_seed
    with pytest.raises(UserError, match="no class has min_per_class=50 images"):
        prepare_dataset("caps", config(root, min_per_class=50), tmp_path / "c")


def test_preparing_the_same_images_twice_gives_the_same_bytes(tmp_path):
    """DVC hashes the prepared folder: timings inside it would make every re-prepare look
    like new data and retrain everything downstream."""
    root = make_image_folder(tmp_path / "root", {"a": 6, "b": 6})
    summaries = [prepare_dataset("same", config(root), tmp_path / out) for out in ("a", "b")]
    assert all(summary["decode_seconds"] > 0 for summary in summaries)  # still returned for the metrics file
    names = sorted(path.name for path in (tmp_path / "a").iterdir())
    assert "prepare.json" in names and names == sorted(path.name for path in (tmp_path / "b").iterdir())
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_primary_type_target_keeps_types_with_enough_images(tmp_path):
    cfg = config(shared_path("pokemon-sprites-gen1"), target="primary_type", pokeapi=str(shared_path("pokeapi")),
                 min_per_class=150, max_per_class=150, workers=0)
    summary = prepare_dataset("primary", cfg, tmp_path / "out")
    data = load_prepared("primary", folder=tmp_path / "out")
    # Generation I primary types (PokeAPI's current types) with at least 150 sprites (12+ species).
    assert data.classes == ["Normal", "Poison", "Bug", "Fire", "Water", "Grass"]
    assert summary["images"] == 6 * 150 and summary["task"] == "single"


def test_types_join_only_the_kept_folders(tmp_path):
    root = make_image_folder(tmp_path / "root", {"Pikachu": 6, "Gengar": 6, "Missingno": 6})
    csv_dir = str(shared_path("pokeapi"))
    with pytest.raises(UserError, match=r"1 class folder\(s\) match no Pokémon species.*'Missingno'"):
        prepare_dataset("t", config(root, target="types", pokeapi=csv_dir), tmp_path / "a")
    prepare_dataset("t", config(root, target="types", pokeapi=csv_dir, classes=["Pikachu", "Gengar"]), tmp_path / "b")
    data = load_prepared("t", folder=tmp_path / "b")
    present = [data.classes[i] for i in np.flatnonzero(data["train"].labels.any(axis=0))]
    assert present == ["Poison", "Ghost", "Electric"]


def test_type_targets_need_the_pokeapi_folder(tmp_path):
    with pytest.raises(ValueError, match="target: types needs pokeapi"):
        config(tmp_path, target="types")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["datasets"]["digits"].update(target="types", pokeapi="data/raw/pokeapy")
    params["sources"]["pokeapi"] = {"kind": "pokeapi"}
    write_params(tmp_path, params)
    with pytest.raises(UserError, match=r"datasets.digits.pokeapi is data/raw/pokeapy, but no source 'pokeapy'.*"
                                        r"did you mean 'pokeapi'"):
        load_params(tmp_path / "params.yaml")


def test_composite_is_fixed_by_seed_whatever_the_worker_count(tmp_path):
    root = sprite_folder(tmp_path / "sprites", {"a": 6, "b": 6, "c": 6})
    runs = {}
    for name, overrides in {"one": {}, "two": {"workers": 2}, "seed1": {"composite": {"seed": 1}}}.items():
        composite = {**{"seed": 0}, **overrides.pop("composite", {})}
        prepare_dataset("c", config(root, image_size=32, composite=composite, **overrides), tmp_path / name)
        runs[name] = load_prepared("c", folder=tmp_path / name)
    assert np.array_equal(runs["one"]["train"].images, runs["two"]["train"].images)
    assert not np.array_equal(runs["one"]["train"].images, runs["seed1"]["train"].images)
    images = runs["one"]["train"].images
    assert (images == 255).all(axis=1).mean() < 0.05  # the white background is gone: photo pixels instead


def test_composite_copies_stay_in_one_split(tmp_path):
    root = sprite_folder(tmp_path / "sprites", {"a": 7, "b": 7})
    summary = prepare_dataset("copies", config(root, composite={"copies": 3}), tmp_path / "out")
    assert summary["images"] == 42
    data = load_prepared("copies", folder=tmp_path / "out")
    split_of = {}
    for split, files in data.files.items():
        for name in files:
            source, copy_number = name.rsplit("#", 1)
            assert split_of.setdefault(source, split) == split  # no source image in two splits
    assert len(split_of) == 14
    train = data["train"].images
    assert not np.array_equal(train[0], train[1])  # two copies of one sprite, pasted differently


def test_composite_keeps_the_object_and_uses_transparency(tmp_path):
    rgba = np.zeros((30, 30, 4), np.uint8)
    rgba[10:20, 5:25] = (0, 0, 255, 255)  # an opaque blue bar on a transparent background
    cutout = with_alpha(Image.fromarray(rgba, "RGBA"))
    assert cutout.getchannel("A").getbbox() == (5, 10, 25, 20)
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.full((50, 80, 3), (0, 200, 0), np.uint8)).save(photos / "green.jpg")
    cfg = CompositeConfig(backgrounds=str(photos), scale=(1.0, 1.0))
    out = np.asarray(paste_on_photo(Image.fromarray(rgba, "RGBA"), np.random.default_rng(0), cfg, 40))
    assert out.shape == (40, 40, 3)
    assert tuple(out[20, 20]) == (0, 0, 255)  # the bar fills the width at scale 1
    assert out[1, 1, 1] > 150 and out[1, 1, 2] < 60  # the green photo around it
    with pytest.raises(UserError, match="not a folder of photos"):
        paste_on_photo(Image.fromarray(rgba, "RGBA"), np.random.default_rng(0),
                       CompositeConfig(backgrounds=str(tmp_path / "none")), 40)


def test_composite_scale_must_be_a_range():
    with pytest.raises(ValueError, match="0 < low <= high <= 1"):
        CompositeConfig(scale=(0.9, 0.5))


@pytest.mark.parametrize("find", ["background", "outline"])
def test_silhouette_crop_finds_the_padded_bounding_box(find):
    image = Image.fromarray(sprite(size=100, box=(60, 20, 90, 60)))
    cropped = silhouette_crop(image, SilhouetteCropConfig(find=find, pad=0.1))
    # The 30 x 40 object plus 10% on each side: 3 and 4 pixels.
    assert cropped.size == (36, 48)
    assert silhouette_crop(Image.new("RGB", (20, 20), "white"), SilhouetteCropConfig()).size == (20, 20)


def test_silhouette_crop_in_prepare_zooms_in(tmp_path):
    root = sprite_folder(tmp_path / "sprites", {"a": 5, "b": 5})
    plain = prepare_dataset("p", config(root), tmp_path / "plain")
    cropped = prepare_dataset("p", config(root, silhouette_crop={"pad": 0.0}), tmp_path / "crop")
    assert plain["images"] == cropped["images"]
    white = [np.mean(load_prepared("p", folder=tmp_path / out)["train"].images == 255) for out in ("plain", "crop")]
    assert white[1] < white[0] / 3  # the white margin is (nearly) gone


def test_params_accept_derived_datasets(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    derived = copy.deepcopy(params["datasets"]["digits"])
    derived.update(classes=["1", "7"], max_per_class=50, composite={"scale": [0.4, 0.8], "copies": 2},
                   silhouette_crop={"find": "outline"})
    params["datasets"]["digits_on_photos"] = derived
    write_params(tmp_path, params)
    loaded = load_params(tmp_path / "params.yaml").dataset("digits_on_photos")
    assert loaded.composite.copies == 2 and loaded.silhouette_crop.find == "outline"
    params["datasets"]["digits_on_photos"]["composite"]["scael"] = [0.4, 0.8]
    write_params(tmp_path, params)
    with pytest.raises(UserError, match=r"datasets.digits_on_photos.composite: unknown key 'scael' \(did you mean"):
        load_params(tmp_path / "params.yaml")
