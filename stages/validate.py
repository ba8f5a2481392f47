"""Stage validate: check params.yaml, recipes.yaml, catalogue.yaml and ssl.yaml before any
other stage runs."""

from smallvision.config import load_params
from smallvision.errors import exits_cleanly
from smallvision.io import write_json
from smallvision.sources import load_sources
from smallvision.ssl.config import load_ssl_params

STAMP = "data/params_ok.json"


@exits_cleanly
def main() -> None:
    params = load_params()
    load_sources(params.sources)
    ssl = load_ssl_params()
    # Constant content: downstream stages depend on this file for ordering, not to rerun.
    write_json(STAMP, {"valid": True})
    print(f"params are valid: {len(params.runs)} run(s) of {len(params.recipes)} recipe(s) on "
          f"{len(params.run_datasets)} dataset(s); {len(ssl.methods)} SSL recipe(s)")


if __name__ == "__main__":
    main()
