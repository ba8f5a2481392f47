"""Kaggle datasets through the official `kaggle` package (Pokémon-150, a Stanford Cars mirror,
or any dataset slug). Credentials follow Kaggle's own conventions and are never printed."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path
from typing import Literal

from pydantic import Field

from smallvision.core.errors import UserError
from smallvision.options.schema import Strict
from smallvision.sources.base import SOURCES
from smallvision.sources.download import install_image_folder, safe_extract

CREDENTIALS_HELP = (
    "create an API token on https://www.kaggle.com/settings (API, 'Create New Token'), then either "
    "save the downloaded kaggle.json as ~/.kaggle/kaggle.json (chmod 600; KAGGLE_CONFIG_DIR moves that folder), "
    "or export KAGGLE_USERNAME and KAGGLE_KEY (or KAGGLE_API_TOKEN for a new-style token) before `dvc repro`"
)


@SOURCES.register("kaggle")
class KaggleSource(Strict):
    """An image folder from Kaggle: the dataset's archive, extracted, with `subdir` (or the
    first folder that does not just wrap another) as the root: `<class>/<image>`, or
    `train/` and `test/`. Seeds: `lantian773030/pokemonclassification` (Pokémon-150),
    `jutrera/stanford-car-dataset-by-classes-folder` (Stanford Cars 196, official split)."""

    kind: Literal["kaggle"]
    dataset: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(/\d+)?$",
                         description="owner/name as in kaggle.com/datasets/owner/name (optionally /version)")
    subdir: str | None = None

    def fetch(self, out_dir: Path) -> dict:
        scratch = out_dir / ".download"
        archive = download_kaggle_dataset(self.dataset, scratch)
        safe_extract(archive, scratch / "extracted")
        info = install_image_folder(scratch / "extracted", out_dir, self.subdir, f"Kaggle dataset {self.dataset}")
        shutil.rmtree(scratch)
        return {"dataset": self.dataset, **info}


def download_kaggle_dataset(dataset: str, folder: Path) -> Path:
    """The dataset's zip, downloaded by the kaggle package into `folder`."""
    import requests  # the kaggle package's HTTP library: its errors say what went wrong

    api = _authenticated_api()
    try:
        api.dataset_download_files(dataset, path=str(folder), quiet=True, unzip=False)
    except requests.HTTPError as err:
        raise UserError(_http_error_message(dataset, err.response.status_code if err.response is not None else None,
                                            str(err))) from None
    except requests.RequestException as err:
        raise UserError(f"cannot reach Kaggle to download {dataset} ({type(err).__name__}); "
                        "check the network connection and proxy settings") from None
    except ValueError as err:  # the kaggle package's size check after its retries
        raise UserError(f"download of Kaggle dataset {dataset} is truncated ({err}); run the stage again") from None
    zips = sorted(folder.glob("*.zip"))
    if not zips:
        raise UserError(f"Kaggle returned no archive for {dataset}")
    return zips[0]


def _authenticated_api():
    """The kaggle package's API client, authenticated by its own rules (kaggle.json,
    KAGGLE_USERNAME/KAGGLE_KEY, access token). On failure the package prints help and
    exits; that becomes one UserError instead, naming what is wrong with an existing
    kaggle.json (the package silently ignores a broken one, or crashes on a non-object)."""
    # Importing `kaggle` already tries to authenticate and prints its help when that fails:
    # keep that noise out of the stage log (it never holds the key).
    with contextlib.redirect_stdout(io.StringIO()):
        from kaggle.api.kaggle_api_extended import KaggleApi

        api = KaggleApi()
        config = Path(api.config)  # kaggle.json where the package looks (KAGGLE_CONFIG_DIR, ~/.kaggle, XDG)
        problem, fatal = config_file_problem(config)
        if fatal:  # not a JSON object: the package would crash on it, whatever else is set
            raise UserError(_config_file_message(config, problem))
        try:
            api.authenticate()
        except SystemExit:
            if problem:
                raise UserError(_config_file_message(config, problem)) from None
            raise UserError(f"no Kaggle credentials found: {CREDENTIALS_HELP}") from None
    return api


def config_file_problem(path: Path) -> tuple[str | None, bool]:
    """What makes an existing kaggle.json unusable, in words that never quote its contents
    (None when it is absent or holds both a username and a key), and whether the kaggle
    package would crash on it (valid JSON that is not an object) rather than ignore it."""
    if not path.is_file():
        return None, False
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        return "is not a text file", False
    except json.JSONDecodeError as err:  # its message names a position, never the text
        return f"is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})", False
    except OSError as err:
        return f"cannot be read ({err.strerror or type(err).__name__})", False
    if not isinstance(data, dict):
        return f"holds a JSON {_JSON_TYPES.get(type(data), type(data).__name__)}, not an object", True
    missing = [name for name in ("username", "key") if not isinstance(data.get(name), str) or not data[name]]
    if missing:
        return "has no " + " and no ".join(f'"{name}"' for name in missing), False
    return None, False


_JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


def _config_file_message(path: Path, problem: str) -> str:
    return (f"Kaggle credentials file {path} {problem}; it must be the kaggle.json that "
            "https://www.kaggle.com/settings gives (API, 'Create New Token'): "
            '{"username": "<your user name>", "key": "<your key>"}. Fix it or replace it with a newly '
            "downloaded one, or delete it and export KAGGLE_USERNAME and KAGGLE_KEY before `dvc repro`")


def _http_error_message(dataset: str, status: int | None, detail: str) -> str:
    if status == 401:
        return f"Kaggle rejected the credentials (HTTP 401) while downloading {dataset}: {CREDENTIALS_HELP}"
    if status == 403:
        return (f"Kaggle refused access to {dataset} (HTTP 403): open https://www.kaggle.com/datasets/{dataset} "
                "while logged in and accept its terms, or check the credentials")
    if status == 404:
        return (f"no Kaggle dataset '{dataset}' (HTTP 404): check the slug in params.yaml; it is owner/name "
                "as in https://www.kaggle.com/datasets/owner/name")
    return f"Kaggle could not serve {dataset} (HTTP {status}): {detail}"
