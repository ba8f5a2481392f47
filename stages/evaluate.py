"""Stage evaluate: test-set metrics, predictions and timings of one trained recipe."""

from smallvision.config import load_params
from smallvision.data.prepared import load_prepared
from smallvision.errors import exits_cleanly
from smallvision.evaluate import evaluate_recipe
from smallvision.paths import eval_dir
from stages import arguments


@exits_cleanly
def main() -> None:
    args = arguments(__doc__, "dataset", "recipe")
    params = load_params()
    recipe = params.recipe(args.recipe)
    data = load_prepared(args.dataset)  # kNN recipes index the training split
    evaluate_recipe(args.dataset, args.recipe, recipe, data, params.evaluate, eval_dir(args.dataset, args.recipe))


if __name__ == "__main__":
    main()
