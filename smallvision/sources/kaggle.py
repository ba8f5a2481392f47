"""Kaggle datasets through the official `kaggle` package (Pokémon-150, a Stanford Cars mirror,
or any dataset slug). Credentials follow Kaggle's own conventions and are never printed."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path
from typing import Literal

from pydantic import Field

from smallvision.errors import UserError
from smallvision.schema import Strict
from smallvision.sources import SOURCES
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
    exits; that becomes one UserError instead."""
    # Importing `kaggle` already tries to authenticate and prints its help when that fails:
    # keep that noise out of the stage log (it never holds the key).
    with contextlib.redirect_stdout(io.StringIO()):
        from kaggle.api.kaggle_api_extended import KaggleApi

        api = KaggleApi()
        try:
            api.authenticate()
        except SystemExit:
            raise UserError(f"no Kaggle credentials found: {CREDENTIALS_HELP}") from None
    return api


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
