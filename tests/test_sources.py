"""Dataset sources: the real download code (kaggle package, torchvision, urllib) run against
local stand-ins on 127.0.0.1, safe extraction, and one clear message for every failure."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from smallvision.core.errors import UserError
from smallvision.core.prepared import load_prepared
from smallvision.data.prepare import prepare_dataset
from smallvision.options.dataset import DatasetConfig
from smallvision.report.facts import fact_lines
from smallvision.sources import pokeapi
from smallvision.sources.download import download, install_image_folder, safe_extract
from smallvision.sources.pokeapi import (
    PokeapiSource,
    load_facts,
    match_species,
    normalize_name,
    type_names,
)
from smallvision.sources.tfds import TfdsSource, write_encoded_images
from smallvision.sources.torchvision_datasets import fetch_cifar
from tests.conftest import (
    REPO,
    class_image,
    copy_repo,
    edit_params,
    run,
    runs_for,
    shared_path,
    write_params,
)
from tests.standins import StandIn, kaggle_env, serve_kaggle, zip_bytes

USER, KEY = "ash", "pikachu-secret-key-0123456789"
POKEMON_SLUG = "lantian773030/pokemonclassification"


def png_bytes(label: int, rng: np.random.Generator) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(class_image(label, rng)).save(buffer, "PNG")
    return buffer.getvalue()


def pokemon_zip(species=("Pikachu", "Eevee", "Psyduck"), per_class: int = 8) -> bytes:
    """Laid out like the Kaggle archive: PokemonData/<species>/<n>.png, plus macOS clutter."""
    rng = np.random.default_rng(0)
    files = {f"PokemonData/{name}/{i}.png": png_bytes(label, rng)
             for label, name in enumerate(species) for i in range(per_class)}
    files["__MACOSX/PokemonData/._Pikachu"] = b"resource fork"
    files["PokemonData/Eevee/notes.txt"] = b"not an image"
    return zip_bytes(files)


def project(tmp_path: Path, sources: dict, datasets: dict | None = None) -> Path:
    """A working folder whose params.yaml holds these sources (and datasets)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["sources"] = sources
    params["datasets"] = datasets or {name: {"root": f"data/raw/{name}"} for name in sources}
    params["runs"] = runs_for(next(iter(params["datasets"])), ["logreg"])
    folder = tmp_path / "project"
    write_params(folder, params)
    return folder


def stage(folder: Path, env: dict, *args: str):
    return run(["python", "-m", *args], cwd=folder, check=False, env={**env, "PYTHONPATH": str(REPO)})


@pytest.fixture
def kaggle(tmp_path):
    """A Kaggle stand-in serving the Pokémon archive and an archive without images."""
    with StandIn() as standin:
        serve_kaggle(standin, {POKEMON_SLUG: pokemon_zip(), "someone/no-images": zip_bytes({"README.md": b"#"})},
                     USER, KEY)
        yield standin


def assert_key_never_shown(result, folder: Path) -> None:
    assert KEY not in result.stdout + result.stderr
    for path in folder.rglob("*"):
        assert not path.is_file() or KEY.encode() not in path.read_bytes(), path


# --- Kaggle ---------------------------------------------------------------------------------

def test_kaggle_source_end_to_end_with_kaggle_json(kaggle, tmp_path):
    """The fetch and prepare stages as DVC runs them; credentials from ~/.kaggle/kaggle.json."""
    home = tmp_path / "home"
    (home / ".kaggle").mkdir(parents=True)
    (home / ".kaggle" / "kaggle.json").write_text(json.dumps({"username": USER, "key": KEY}))
    (home / ".kaggle" / "kaggle.json").chmod(0o600)
    env = kaggle_env(kaggle, home, username=None, key=None)
    folder = project(tmp_path, {"pokemon": {"kind": "kaggle", "dataset": POKEMON_SLUG}})
    fetched = stage(folder, env, "stages.fetch", "pokemon")
    assert fetched.returncode == 0, fetched.stderr
    raw = folder / "data/raw/pokemon"
    assert sorted(p.name for p in raw.iterdir()) == ["Eevee", "Pikachu", "Psyduck", "source.json"]
    assert json.loads((raw / "source.json").read_text())["images"] == 24
    prepared = stage(folder, env, "stages.prepare", "pokemon")
    assert prepared.returncode == 0, prepared.stderr
    data = load_prepared("pokemon", folder=folder / "data/prepared/pokemon")
    assert data.classes == ["Eevee", "Pikachu", "Psyduck"] and data["train"].images.shape[1:] == (3, 32, 32)
    summary = json.loads((folder / "data/prepared/pokemon/prepare.json").read_text())
    assert summary["ignored_non_images"] == ["Eevee/notes.txt"] and summary["task"] == "single"
    assert kaggle.hits.count(f"/storage/{POKEMON_SLUG}.zip") == 1
    assert_key_never_shown(fetched, folder)


@pytest.mark.parametrize("username, key, expected", [
    (None, None, "no Kaggle credentials found"),
    (USER, "wrong-key-9876543210", "Kaggle rejected the credentials (HTTP 401)"),
])
def test_missing_or_invalid_kaggle_credentials(kaggle, tmp_path, username, key, expected):
    env = kaggle_env(kaggle, tmp_path / "home", username, key)
    folder = project(tmp_path, {"pokemon": {"kind": "kaggle", "dataset": POKEMON_SLUG}})
    result = stage(folder, env, "stages.fetch", "pokemon")
    assert result.returncode == 2
    assert f"error: sources.pokemon: {expected}" in result.stderr and "Traceback" not in result.stderr
    assert "~/.kaggle/kaggle.json" in result.stderr and "KAGGLE_USERNAME and KAGGLE_KEY" in result.stderr
    assert not (folder / "data/raw/pokemon").exists() and not list((folder / "data/raw").glob(".pokemon*"))
    if key:
        assert key not in result.stdout + result.stderr


@pytest.mark.parametrize("content, problem", [
    ('["a"]', "holds a JSON array, not an object"),
    ('{"username": "abc", "key": ', "is not valid JSON (line 1, column 28"),
    ('{"username": "ash", "key": "' + KEY + '"', "is not valid JSON (line 1, column"),
    ('{"username": "abc"}', 'has no "key"'),
    ('{"key": "' + KEY + '"}', 'has no "username"'),
])
def test_broken_kaggle_json_says_what_is_wrong_with_it(kaggle, tmp_path, content, problem):
    """The file exists but is unusable: one message naming the file and the problem (never its
    contents), not the kaggle package's traceback nor 'no credentials found'."""
    home = tmp_path / "home"
    (home / ".kaggle").mkdir(parents=True)
    config = home / ".kaggle" / "kaggle.json"
    config.write_text(content)
    config.chmod(0o600)
    env = kaggle_env(kaggle, home, username=None, key=None)
    folder = project(tmp_path, {"pokemon": {"kind": "kaggle", "dataset": POKEMON_SLUG}})
    result = stage(folder, env, "stages.fetch", "pokemon")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "no Kaggle credentials found" not in result.stderr
    assert f"error: sources.pokemon: Kaggle credentials file {config} {problem}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert KEY not in result.stdout + result.stderr and "abc" not in result.stderr
    assert not (folder / "data/raw/pokemon").exists()


@pytest.mark.parametrize("slug, expected", [
    ("nobody/no-such-dataset", "no Kaggle dataset 'nobody/no-such-dataset' (HTTP 404)"),
    ("someone/no-images", "Kaggle dataset someone/no-images holds no images"),
])
def test_kaggle_slug_without_a_dataset_or_images(kaggle, tmp_path, slug, expected):
    env = kaggle_env(kaggle, tmp_path / "home", USER, KEY)
    folder = project(tmp_path, {"kaggled": {"kind": "kaggle", "dataset": slug}})
    result = stage(folder, env, "stages.fetch", "kaggled")
    assert result.returncode == 2 and expected in result.stderr and "Traceback" not in result.stderr
    assert not (folder / "data/raw/kaggled").exists()


def test_second_dvc_repro_downloads_nothing(kaggle, tmp_path):
    repo = copy_repo(tmp_path / "repo")
    edit_params(repo, lambda p, r: p["sources"].update(pokemon={"kind": "kaggle", "dataset": POKEMON_SLUG}))
    env = kaggle_env(kaggle, tmp_path / "home", USER, KEY)
    first = run(["dvc", "repro", "fetch@pokemon"], cwd=repo, env=env)
    assert "Running stage 'fetch@pokemon'" in first.stdout
    again = run(["dvc", "repro", "fetch@pokemon"], cwd=repo, env=env)
    assert "Running stage" not in again.stdout
    assert kaggle.hits.count(f"/storage/{POKEMON_SLUG}.zip") == 1
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert lock["stages"]["fetch@pokemon"]["outs"][0]["md5"].endswith(".dir")


# --- Downloads and archives -----------------------------------------------------------------

def test_truncated_download_is_an_error_and_leaves_nothing(tmp_path):
    with StandIn() as standin:
        standin.serve("/file.csv", b"x" * 5000, cut_after=1000)
        with pytest.raises(UserError, match=r"truncated: got 1000 of 5000 bytes"):
            download(f"{standin.url}/file.csv", tmp_path / "file.csv", what="a test file")
        with pytest.raises(UserError, match=r"HTTP 404 .*check the name"):
            download(f"{standin.url}/missing.csv", tmp_path / "missing.csv", what="a test file")
    assert list(tmp_path.iterdir()) == []


def _tar_with(member: tarfile.TarInfo, data: bytes = b"evil") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        ok = tarfile.TarInfo("fine.txt")
        ok.size = 2
        bundle.addfile(ok, io.BytesIO(b"ok"))
        member.size = len(data) if member.isfile() else 0
        bundle.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return buffer.getvalue()


def _symlink(name: str, target: str, kind=tarfile.SYMTYPE) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type, member.linkname = kind, target
    return member


def _zip_symlink() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        link = zipfile.ZipInfo("link")
        link.external_attr = 0o120777 << 16  # S_IFLNK
        bundle.writestr(link, "/etc/passwd")
    return buffer.getvalue()


@pytest.mark.parametrize("name, archive, reason", [
    ("zip-dotdot.zip", lambda: zip_bytes({"ok.txt": b"ok", "../escaped.txt": b"evil"}), "leaves the target"),
    ("zip-nested-dotdot.zip", lambda: zip_bytes({"a/../../escaped.txt": b"evil"}), "leaves the target"),
    ("zip-absolute.zip", lambda: zip_bytes({"/tmp/escaped.txt": b"evil"}), "absolute path"),
    ("zip-windows-dotdot.zip", lambda: zip_bytes({"..\\escaped.txt": b"evil"}), "leaves the target"),
    ("zip-windows-drive.zip", lambda: zip_bytes({"C:\\escaped.txt": b"evil"}), "absolute path"),
    ("zip-symlink.zip", _zip_symlink, "link or special file"),
    ("tar-dotdot.tar.gz", lambda: _tar_with(tarfile.TarInfo("../escaped.txt")), "leaves the target"),
    ("tar-absolute.tar.gz", lambda: _tar_with(tarfile.TarInfo("/tmp/escaped.txt")), "absolute path"),
    ("tar-symlink.tar.gz", lambda: _tar_with(_symlink("link", "/etc")), "link or special file"),
    ("tar-hardlink.tar.gz", lambda: _tar_with(_symlink("hard", "../../x", tarfile.LNKTYPE)), "link or special"),
])
def test_archive_members_cannot_escape_the_target(tmp_path, name, archive, reason):
    path = tmp_path / name
    path.write_bytes(archive())
    target = tmp_path / "deep" / "target"
    with pytest.raises(UserError, match=reason):
        safe_extract(path, target)
    assert list(target.iterdir()) == []  # every member is checked before any is written
    assert not (tmp_path / "deep" / "escaped.txt").exists() and not Path("/tmp/escaped.txt").exists()


@pytest.mark.parametrize("suffix", [".zip", ".tar.gz"])
def test_truncated_archive_is_one_message(tmp_path, suffix):
    data = zip_bytes({f"c/{i}.bin": os.urandom(2000) for i in range(5)}) if suffix == ".zip" \
        else _tar_with(tarfile.TarInfo("big.bin"), os.urandom(20000))
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated"):
        safe_extract(path, tmp_path / "out")


def test_nested_train_test_archive_becomes_the_root(tmp_path):
    """Laid out like the Stanford Cars mirror: car_data/car_data/{train,test}/<class>/, CSVs beside."""
    rng = np.random.default_rng(0)
    files = {f"car_data/car_data/{split}/{name}/{i}.png": png_bytes(label, rng)
             for split in ("train", "test") for label, name in enumerate(["AM General Hummer SUV 2000", "Audi R8"])
             for i in range(4)}
    (tmp_path / "cars.zip").write_bytes(zip_bytes({**files, "names.csv": b"x", "anno_train.csv": b"x"}))
    for subdir, out in [(None, "found"), ("car_data/car_data", "named")]:
        safe_extract(tmp_path / "cars.zip", tmp_path / out / "extracted")
        info = install_image_folder(tmp_path / out / "extracted", tmp_path / out, subdir, "cars")
        assert info == {"images": 16, "classes": 2}
        assert (tmp_path / out / "train" / "Audi R8").is_dir() and (tmp_path / out / "test").is_dir()
    safe_extract(tmp_path / "cars.zip", tmp_path / "bad" / "extracted")
    with pytest.raises(UserError, match="subdir '../..' must be a folder inside the download"):
        install_image_folder(tmp_path / "bad" / "extracted", tmp_path / "bad", "../..", "cars")
    with pytest.raises(UserError, match=r"no folder 'cars' \(its top level holds: anno_train.csv, car_data"):
        install_image_folder(tmp_path / "bad" / "extracted", tmp_path / "bad", "cars", "cars")


# --- torchvision ----------------------------------------------------------------------------

def cifar_standin_class(url: str, tmp_path: Path, cut: bool = False):
    """torchvision's CIFAR10 with its constants (URL, archive and per-file MD5s) pointing at a
    tiny archive of the same layout made here, so torchvision's own download, checksum and
    loading code runs unchanged."""
    from torchvision.datasets import CIFAR10

    rng = np.random.default_rng(0)
    batches = {}
    for name, count in [("data_batch_1", 12), ("data_batch_2", 12), ("test_batch", 6)]:
        labels = [i % 3 for i in range(count)]
        data = np.stack([class_image(label, rng, 32).transpose(2, 0, 1).reshape(-1) for label in labels])
        batches[name] = pickle.dumps({"data": data, "labels": labels})
    batches["batches.meta"] = pickle.dumps({"label_names": ["airplane", "automobile", "bird"]})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        for name, payload in batches.items():
            member = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            member.size = len(payload)
            bundle.addfile(member, io.BytesIO(payload))
    archive = buffer.getvalue()
    md5 = {name: hashlib.md5(payload).hexdigest() for name, payload in batches.items()}
    return archive, type("StandInCIFAR10", (CIFAR10,), {
        "url": f"{url}/cifar-10-python.tar.gz",
        "tgz_md5": hashlib.md5(archive).hexdigest(),
        "train_list": [["data_batch_1", md5["data_batch_1"]], ["data_batch_2", md5["data_batch_2"]]],
        "test_list": [["test_batch", md5["test_batch"]]],
        "meta": {"filename": "batches.meta", "key": "label_names", "md5": md5["batches.meta"]},
    })


def test_torchvision_cifar_end_to_end(tmp_path):
    with StandIn() as standin:
        archive, dataset_class = cifar_standin_class(standin.url, tmp_path)
        standin.serve("/cifar-10-python.tar.gz", archive)
        out = tmp_path / "raw"
        out.mkdir()
        info = fetch_cifar(dataset_class, out)
    assert info == {"images": 30, "classes": 3, "train": 24, "test": 6}
    assert [p.name for p in out.iterdir()] == ["arrays.npz"]  # the download itself is not kept
    prepare_dataset("cifar", DatasetConfig(root=str(out), image_size=16, workers=1), tmp_path / "prepared")
    data = load_prepared("cifar", folder=tmp_path / "prepared")
    assert data.classes == ["airplane", "automobile", "bird"]
    assert len(data["test"]) == 6 and len(data["train"]) + len(data["val"]) == 24  # torchvision's split kept


def test_torchvision_truncated_download_fails_the_checksum(tmp_path):
    with StandIn() as standin:
        archive, dataset_class = cifar_standin_class(standin.url, tmp_path)
        standin.serve("/cifar-10-python.tar.gz", archive, cut_after=len(archive) // 2)
        with pytest.raises(UserError, match="truncated or corrupt .*MD5"):
            fetch_cifar(dataset_class, tmp_path)


# --- TFDS -----------------------------------------------------------------------------------

def test_tfds_without_tensorflow_points_to_the_kaggle_mirror(tmp_path):
    if importlib.util.find_spec("tensorflow_datasets"):
        pytest.skip("tensorflow-datasets is installed here; this test covers machines without it")
    with pytest.raises(UserError, match=r"pip install tensorflow tensorflow-datasets.*kind: kaggle"):
        TfdsSource(kind="tfds").fetch(tmp_path)


def test_tfds_examples_are_written_as_an_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    jpeg, png = io.BytesIO(), io.BytesIO()
    Image.fromarray(class_image(0, rng)).save(jpeg, "JPEG")
    Image.fromarray(class_image(1, rng)).save(png, "PNG")
    count = write_encoded_images([(jpeg.getvalue(), 0), (png.getvalue(), 1)], ["Audi A4", "Ram C/V 2012"],
                                 tmp_path / "train")
    assert count == 2
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.*")) == [
        "train/Audi A4/000001.jpg", "train/Ram C-V 2012/000002.png"]


# --- PokeAPI --------------------------------------------------------------------------------

def test_pokeapi_download_to_a_multilabel_dataset(tmp_path):
    """Fetch the CSVs over HTTP (the real PokeAPI files, served locally), then prepare the
    sprites of ten species with their types as a multi-label target."""
    csv_dir, sprites = shared_path("pokeapi"), shared_path("pokemon-sprites-gen1")
    raw = tmp_path / "pokeapi"
    raw.mkdir()
    with StandIn() as standin:
        for name in pokeapi.CSV_FILES:
            standin.serve(f"/data/v2/csv/{name}", (csv_dir / name).read_bytes())
        info = PokeapiSource(kind="pokeapi", base_url=f"{standin.url}/data/v2/csv/").fetch(raw)
    assert info == {"files": len(pokeapi.CSV_FILES), "species": len(load_facts(csv_dir)), "types": 18}
    species = ["Bulbasaur", "Charmander", "Squirtle", "Pikachu", "Geodude", "Gengar", "Nidoran-F",
               "Mr-Mime", "Farfetch’d", "Magnemite"]
    cfg = DatasetConfig(root=str(sprites), image_size=16, classes=species, target="types", pokeapi=str(raw))
    summary = prepare_dataset("types", cfg, tmp_path / "prepared")
    # The labels are the types some kept species has (13 of PokeAPI's 18 here), in PokeAPI's order:
    # over a type no image has, "no" is trivially right and would inflate every per-label figure.
    present = {kind for entry in match_species(species, load_facts(raw), "test") for kind in entry["types"]}
    types = [kind for kind in type_names(raw) if kind in present]
    assert len(type_names(raw)) == 18 and len(types) == 13
    assert summary["task"] == "multilabel" and summary["classes"] == 13
    data = load_prepared("types", folder=tmp_path / "prepared")
    assert data.classes == types and data.multilabel
    labels, files = data["train"].labels, data.files["train"]
    assert labels.dtype == np.uint8 and labels.shape == (len(files), 13)
    assert labels.any(0).all()  # every label kept is some training image's
    row = files.index(next(f for f in files if f.startswith("Bulbasaur/")))
    assert [data.classes[i] for i in np.flatnonzero(labels[row])] == ["Poison", "Grass"]
    for split in ("train", "val", "test"):  # stratified by species: each species in each split
        assert {f.split("/")[0] for f in data.files[split]} == set(species)


def test_pokeapi_unreachable_or_missing_file_is_one_message(tmp_path):
    with StandIn() as standin:
        with pytest.raises(UserError, match=r"PokeAPI pokemon_species.csv.*HTTP 404"):
            PokeapiSource(kind="pokeapi", base_url=standin.url).fetch(tmp_path)
    with pytest.raises(UserError, match="lacks the PokeAPI file"):
        load_facts(tmp_path)
    for name in pokeapi.CSV_FILES:  # what a wrong base_url may serve with status 200
        (tmp_path / name).write_text("<html>\n<body>Rate limit exceeded</body>\n</html>\n")
    with pytest.raises(UserError, match="does not hold PokeAPI's CSV files"):
        load_facts(tmp_path)


def test_every_sprite_folder_joins_its_pokeapi_species():
    facts = load_facts(shared_path("pokeapi"))
    folders = sorted(p.name for p in shared_path("pokemon-sprites-gen1").iterdir() if p.is_dir())
    matched = match_species(folders, facts, "test")
    assert len(folders) == 151 and sorted(entry["id"] for entry in matched) == list(range(1, 152))
    by_folder = dict(zip(folders, matched))
    assert by_folder["Nidoran-F"]["name"] == "Nidoran♀" and by_folder["Nidoran-M"]["name"] == "Nidoran♂"
    assert by_folder["Mr-Mime"]["types"] == ["Psychic", "Fairy"]
    assert by_folder["Farfetch’d"]["genus"] == "Wild Duck Pokémon"
    pikachu = facts["Pikachu"]
    assert pikachu["evolves_from"] == "Pichu" and pikachu["evolves_into"] == ["Raichu"]
    assert fact_lines(pikachu)[-1] == "Evolves from Pichu; evolves into Raichu"  # names keep their case
    assert pikachu["height_m"] == 0.4 and pikachu["weight_kg"] == 6.0 and pikachu["base_stats"]["speed"] == 90
    assert facts["Mewtwo"]["is_legendary"] and facts["Mew"]["is_mythical"]
    assert facts["Alolan-Sandslash"]["types"] == ["Ice", "Steel"]  # a Kaggle Pokémon-150 folder name


@pytest.mark.parametrize("name, folder", [
    ("Nidoran♀", "Nidoran-F"), ("Nidoran♂", "Nidoran-M"), ("Mr. Mime", "Mr-Mime"), ("Farfetch’d", "Farfetchd"),
    ("Farfetch'd", "Farfetchd"), ("Type: Null", "Type-Null"), ("Mime Jr.", "Mime-Jr"), ("Flabébé", "Flabebe"),
    ("Ho-Oh", "Ho-Oh"), ("Mr-Mime", "Mr-Mime"),
])
def test_normalize_name(name, folder):
    assert normalize_name(name) == folder


def test_unknown_species_folder_is_named_with_a_suggestion():
    facts = load_facts(shared_path("pokeapi"))
    with pytest.raises(UserError, match=r"'Pikachoo' \(did you mean 'Pikachu'\?\)"):
        match_species(["Pikachu", "Pikachoo"], facts, "datasets.x")
