"""Prepare: decode once, stratified fixed splits, clear errors, nothing half-written."""

from __future__ import annotations

import errno
import io
import json

import numpy as np
import pytest
from PIL import Image

from smallvision.core.errors import UserError, exits_cleanly
from smallvision.core.prepared import load_prepared
from smallvision.data.images import load_image
from smallvision.data.prepare import prepare_dataset
from smallvision.options.dataset import DatasetConfig
from tests.conftest import make_image_folder


def config(root, **overrides) -> DatasetConfig:
    return DatasetConfig(**{"root": str(root), "image_size": 16, "workers": 1, **overrides})


def test_folder_is_split_per_class_and_reproducibly(image_folder, tmp_path):
    summary = prepare_dataset("demo", config(image_folder), tmp_path / "a")
    assert summary["split_sizes"] == {"train": 32, "val": 8, "test": 8}
    data = load_prepared("demo", folder=tmp_path / "a")
    assert data.classes == ["alpha", "beta", "delta", "gamma"]
    assert data["train"].images.shape == (32, 3, 16, 16) and data["train"].images.dtype == np.uint8
    for split in ("train", "val", "test"):  # stratified: every class in every split
        assert set(np.unique(data[split].labels)) == {0, 1, 2, 3}
    prepare_dataset("demo", config(image_folder, workers=2), tmp_path / "b")
    again = load_prepared("demo", folder=tmp_path / "b")
    assert data.files == again.files
    assert np.array_equal(data["test"].images, again["test"].images)
    other = prepare_dataset("demo", config(image_folder, split_seed=1), tmp_path / "c")
    assert load_prepared("demo", folder=tmp_path / "c").files["test"] != data.files["test"]
    assert other["images"] == 48



def test_without_a_validation_split_the_same_test_images_and_train_takes_val(image_folder, tmp_path):
    """A study that trains on train + val (val_fraction 0) is compared with runs on the default
    split: that holds only if the test images are the same ones."""
    prepare_dataset("demo", config(image_folder), tmp_path / "split")
    assert prepare_dataset("demo", config(image_folder, val_fraction=0), tmp_path / "joined")["split_sizes"] == {
        "train": 40, "val": 0, "test": 8}
    split, joined = (load_prepared("demo", folder=tmp_path / name).files for name in ("split", "joined"))
    assert joined["test"] == split["test"]
    assert sorted(joined["train"]) == sorted(split["train"] + split["val"])

def test_train_test_layout_is_respected(tmp_path):
    make_image_folder(tmp_path / "root" / "train", {"a": 10, "b": 10})
    make_image_folder(tmp_path / "root" / "test", {"a": 3, "b": 4}, seed=1)
    prepare_dataset("tt", config(tmp_path / "root"), tmp_path / "out")
    data = load_prepared("tt", folder=tmp_path / "out")
    assert len(data["test"]) == 7
    assert all(f.startswith("test/") for f in data.files["test"])
    assert all(f.startswith("train/") for f in data.files["train"] + data.files["val"])


def test_corrupt_image_is_named_and_nothing_is_written(image_folder, tmp_path):
    bad = image_folder / "beta" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    out = tmp_path / "out"
    with pytest.raises(UserError, match="broken.png") as err:
        prepare_dataset("demo", config(image_folder), out)
    assert "on_bad_image: skip" in str(err.value)
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_is_a_message_and_leaves_nothing_behind(image_folder, tmp_path, monkeypatch):
    monkeypatch.setattr(np, "save", no_space)
    out = tmp_path / "out"
    with pytest.raises(UserError, match=rf"no space left on the disk while writing {out} \(No space left on device\); "
                                        "nothing was written there. Free some space"):
        prepare_dataset("demo", config(image_folder), out)
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_a_full_disk_anywhere_in_a_stage_is_a_message_and_exit_code_2(capsys):
    @exits_cleanly
    def stage():
        raise OSError(errno.ENOSPC, "No space left on device", "reports/train/x/metrics.json")

    with pytest.raises(SystemExit) as exit_:
        stage()
    assert exit_.value.code == 2
    assert capsys.readouterr().err.startswith("error: no space left on the disk while writing reports/train/x/metrics.json")


def test_truncated_jpeg_is_an_error(image_folder):
    buffer = io.BytesIO()
    Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(buffer, "JPEG")
    (image_folder / "alpha" / "cut.jpg").write_bytes(buffer.getvalue()[:200])
    with pytest.raises(UserError, match="cut.jpg"):
        prepare_dataset("demo", config(image_folder), image_folder.parent / "out")


def test_skip_option_lists_bad_files(image_folder, tmp_path):
    (image_folder / "beta" / "broken.jpg").write_bytes(b"garbage")
    (image_folder / "beta" / "notes.txt").write_text("not an image")
    summary = prepare_dataset("demo", config(image_folder, on_bad_image="skip"), tmp_path / "out")
    assert summary["images"] == 48
    assert any("broken.jpg" in s for s in summary["skipped_bad_images"])
    assert summary["ignored_non_images"] == ["beta/notes.txt"]


def test_empty_class_folder_is_an_error(image_folder, tmp_path):
    (image_folder / "empty").mkdir()
    with pytest.raises(UserError, match="empty.*holds no images"):
        prepare_dataset("demo", config(image_folder), tmp_path / "out")


def test_one_class_is_refused_in_prepare_not_in_training(image_folder, tmp_path):
    """Once, a one-class folder passed validation and prepare, then logreg died in scikit-learn's
    traceback ("needs samples of at least 2 classes")."""
    make_image_folder(tmp_path / "one", {"only": 12})
    with pytest.raises(UserError, match=r"datasets.x: only the class 'only' is left after preparation \(12 images "
                                        r"from .*\); a classifier needs at least two"):
        prepare_dataset("x", config(tmp_path / "one"), tmp_path / "out")
    with pytest.raises(UserError, match="only the class 'beta' is left"):
        prepare_dataset("x", config(image_folder, classes=["beta"]), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_hidden_folders_are_left_out_and_reported(image_folder, tmp_path, capsys):
    """Folders named `...` or `.hidden` were dropped without a word."""
    make_image_folder(image_folder, {".hidden": 16, "...": 3})
    make_image_folder(image_folder / "alpha", {".thumbs": 2})
    summary = prepare_dataset("demo", config(image_folder), tmp_path / "out")
    assert summary["classes"] == 4 and summary["images"] == 48
    expected = {".hidden": 16, "...": 3, "alpha/.thumbs": 2}
    assert summary["hidden_folders"] == expected
    assert json.loads((tmp_path / "out/prepare.json").read_text())["hidden_folders"] == expected
    assert "left out 3 hidden folder(s) holding images" in capsys.readouterr().out
    clean = prepare_dataset("demo", config(make_image_folder(tmp_path / "clean", {"a": 8, "b": 8})), tmp_path / "c")
    assert "hidden_folders" not in clean and "linked_class_folders" not in clean  # the same bytes as before


def test_class_folders_linking_to_images_listed_already_are_left_out_and_reported(image_folder, tmp_path, capsys):
    """A class folder linking to the root put every image into one more class, silently; one
    linking to another class folder, its images twice. A link elsewhere is a class as any."""
    (image_folder / "everything").symlink_to(image_folder, target_is_directory=True)
    (image_folder / "again").symlink_to(image_folder / "alpha", target_is_directory=True)
    outside = make_image_folder(tmp_path / "elsewhere", {"epsilon": 12}) / "epsilon"
    (image_folder / "epsilon").symlink_to(outside, target_is_directory=True)
    summary = prepare_dataset("demo", config(image_folder), tmp_path / "out")
    assert summary["classes"] == 5 and summary["images"] == 60
    assert summary["linked_class_folders"] == {"again": str((image_folder / "alpha").resolve()),
                                               "everything": str(image_folder.resolve())}
    assert load_prepared("demo", folder=tmp_path / "out").classes == ["alpha", "beta", "delta", "epsilon", "gamma"]
    assert "left out 2 class folder(s) that link to images listed already" in capsys.readouterr().out


def test_class_with_too_few_images(tmp_path):
    make_image_folder(tmp_path / "root", {"many": 10, "single": 1})
    with pytest.raises(UserError, match="class 'single' has 1 training image"):
        prepare_dataset("x", config(tmp_path / "root"), tmp_path / "out")


def test_folder_without_images(tmp_path):
    (tmp_path / "nothing").mkdir()
    with pytest.raises(UserError, match="no class subfolders"):
        prepare_dataset("x", config(tmp_path / "nothing"), tmp_path / "out")
    with pytest.raises(UserError, match="folder not found"):
        prepare_dataset("x", config(tmp_path / "missing"), tmp_path / "out")


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "CMYK", "I;16", "LA"])
def test_image_modes_are_converted(tmp_path, mode):
    rgb = np.zeros((20, 20, 3), np.uint8)
    rgb[:, :10] = (200, 30, 30)
    image = Image.fromarray(rgb)
    if mode == "I;16":
        image = Image.fromarray(np.asarray(image.convert("L")).astype(np.uint16) * 257)  # mode I;16
    elif mode == "RGBA":
        rgba = np.dstack([rgb, np.full((20, 20), 255, np.uint8)])
        rgba[:, 10:, 3] = 0  # transparent right half -> white
        image = Image.fromarray(rgba, "RGBA")
    else:
        image = image.convert(mode)
    path = tmp_path / ("img.tiff" if mode in ("CMYK", "I;16") else "img.png")
    image.save(path)
    out = load_image(path, 20, "rgb", "stretch")
    assert out.shape == (20, 20, 3) and out.dtype == np.uint8
    if mode == "I;16":  # 16-bit is scaled to 8 bits, not clipped to white
        assert 0 < out[5, 5, 0] < 255
    if mode == "RGBA":
        assert (out[5, 15] == 255).all() and out[5, 5, 0] == 200


def test_exif_orientation_is_applied(tmp_path):
    array = np.zeros((10, 30, 3), np.uint8)
    array[:, :5] = 255  # white stripe on the left of a wide image
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    image.save(tmp_path / "r.jpg", exif=exif, quality=95)
    out = load_image(tmp_path / "r.jpg", 30, "gray", "pad")
    # After rotation the stripe lies along the top of a tall image, padded left and right.
    gray = out[:, :, 0]
    assert gray[0:4, 12:18].min() > 200 and gray[20:30, 12:18].max() < 60


def jpeg_bytes(value: int = 128) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((20, 20, 3), value, np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def test_min_per_class_counts_images_that_decode(image_folder, tmp_path):
    """With on_bad_image: skip, a class left with too few readable images is dropped by
    min_per_class (as the split error advises), not counted by its files before decoding."""
    (image_folder / "ruined").mkdir()
    for i in range(4):
        (image_folder / "ruined" / f"{i}.jpg").write_bytes(b"garbage")
    make_image_folder(image_folder, {"thin": 3}, seed=1)  # 3 readable images ...
    for i in range(3):  # ... and 3 unreadable ones: 6 files
        (image_folder / "thin" / f"bad{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n cut")
    summary = prepare_dataset("demo", config(image_folder, on_bad_image="skip"), tmp_path / "a")
    data = load_prepared("demo", folder=tmp_path / "a")
    assert "ruined" not in data.classes and "thin" in data.classes  # no readable image: dropped at min 1
    assert summary["skipped_bad_images"] == [f"ruined/{i}.jpg" for i in range(4)] + \
        [f"thin/bad{i}.png" for i in range(3)]  # relative to the root, as ignored_non_images
    summary = prepare_dataset("demo", config(image_folder, on_bad_image="skip", min_per_class=4), tmp_path / "b")
    assert load_prepared("demo", folder=tmp_path / "b").classes == ["alpha", "beta", "delta", "gamma"]
    assert summary["images"] == 48 and summary["classes"] == 4
    damaged = make_image_folder(tmp_path / "damaged", {"a": 3, "b": 3})
    for name in ("a", "b"):
        for i in range(3):
            (damaged / name / f"bad{i}.jpg").write_bytes(b"garbage")
    with pytest.raises(UserError, match="no class has min_per_class=4 readable images"):
        prepare_dataset("d", config(damaged, on_bad_image="skip", min_per_class=4), tmp_path / "c")


def test_images_are_told_by_content_not_extension(image_folder, tmp_path, capsys):
    """Kaggle Pokémon-150 holds JPEGs named `x.jpg')`, `x.asp`, `x.png.sb-...`: decoded;
    an SVG or text file, whatever its name, is ignored, listed and named in the log."""
    lying = ["alpha/photo.jpg')", "beta/image.asp", "gamma/pic.png.sb-1a2b3c4d-XyZ"]
    for name in lying:
        (image_folder / name).write_bytes(jpeg_bytes())
    (image_folder / "delta" / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    (image_folder / "delta" / "readme").write_text("not an image")
    summary = prepare_dataset("demo", config(image_folder), tmp_path / "out")
    assert summary["images"] == 51 and summary["skipped_bad_images"] == []
    assert summary["ignored_non_images"] == ["delta/logo.svg", "delta/readme"]
    data = load_prepared("demo", folder=tmp_path / "out")
    assert set(lying) <= {name for files in data.files.values() for name in files}
    out = capsys.readouterr().out
    assert "ignored 2 non-image file(s)" in out and "delta/logo.svg" in out


def test_pokemon150_lying_extensions_are_images():
    from smallvision.data.scan import scan_folder
    from tests.conftest import shared_path

    root = shared_path("pokemon150")
    listing = scan_folder(root, "datasets.pokemon150")
    names = [str(path.relative_to(root)) for path in listing.files]
    odd = [name for name in names if not name.lower().endswith((".jpg", ".jpeg", ".png", ".gif", ".bmp"))]
    assert len(odd) == 4 and any(name.endswith(".asp") for name in odd), odd
    assert len(listing.ignored) == 11 and all(path.endswith(".svg") for path in listing.ignored)
