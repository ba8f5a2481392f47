"""Stage validate: check all of params.yaml before any other stage runs."""

from smallvision.config import load_params
from smallvision.errors import exits_cleanly
from smallvision.io import write_json

STAMP = "data/params_ok.json"


@exits_cleanly
def main() -> None:
    params = load_params()
    # Constant content: downstream stages depend on this file for ordering, not to rerun.
    write_json(STAMP, {"valid": True})
    print(f"params.yaml is valid: {len(params.datasets)} dataset(s), {len(params.benchmark.recipes)} recipe(s)")


if __name__ == "__main__":
    main()
