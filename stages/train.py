"""Stage train: fit one recipe on one prepared dataset (resumes a killed run)."""

from smallvision.config import load_params
from smallvision.data.prepared import load_prepared
from smallvision.errors import exits_cleanly
from smallvision.paths import run_paths
from smallvision.progress import log
from smallvision.train.methods import METHODS
from stages import arguments


@exits_cleanly
def main() -> None:
    args = arguments(__doc__, "dataset", "recipe")
    recipe = load_params().recipe(args.recipe)
    data = load_prepared(args.dataset)
    summary = METHODS[recipe.method](recipe, data, run_paths(args.dataset, args.recipe))
    if summary is not None:  # None: a non-main torchrun process, whose rank 0 reports
        log(f"trained {args.recipe} on {args.dataset} in {summary['train_seconds']:.1f}s")


if __name__ == "__main__":
    main()
