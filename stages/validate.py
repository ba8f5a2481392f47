"""Stage validate: check params.yaml, recipes.yaml and ssl.yaml before any other stage runs
(catalogue.yaml is checked by the report, the only stage that reads it)."""

from smallvision.core.errors import UserError, exits_cleanly
from smallvision.core.io import prune_empty_dirs, write_json
from smallvision.options.params import load_params
from smallvision.sources import load_sources

STAMP = "data/params_ok.json"


@exits_cleanly
def main() -> None:
    try:
        check()
    except UserError:
        prune_empty_dirs("data", "reports")  # the folders `dvc exp run` made for the rejected runs
        raise


def check() -> None:
    params = load_params()
    load_sources(params.sources)
    from smallvision.ssl.config import (
        load_ssl_params,  # here: the other checks need no torch
    )

    ssl = load_ssl_params()
    # Constant content: downstream stages depend on this file for ordering, not to rerun.
    write_json(STAMP, {"valid": True})
    print(f"params are valid: {len(params.runs)} run(s) of {len({run.arm for run in params.runs.values()})} arm(s) on "
          f"{len(params.run_datasets)} dataset(s); {len(ssl.runs)} SSL run(s)")


if __name__ == "__main__":
    main()
