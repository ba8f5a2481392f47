"""Stage evaluate: test-set metrics, predictions and timings of one trained run."""

from smallvision.core.errors import exits_cleanly
from smallvision.core.paths import eval_dir, model_dir, train_log_dir
from smallvision.core.prepared import load_prepared
from smallvision.evaluate import evaluate_recipe
from smallvision.options.params import load_params
from stages import run_arguments


@exits_cleanly
def main() -> None:
    params = load_params()
    run = run_arguments(__doc__, params)
    data = load_prepared(run.dataset).with_train_per_class(run.train_per_class, run.seed)  # kNN indexes it
    evaluate_recipe(run.recipe_config, data, params.evaluate, model_dir(*run.key), train_log_dir(*run.key),
                    eval_dir(*run.key))


if __name__ == "__main__":
    main()
