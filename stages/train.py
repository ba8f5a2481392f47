"""Stage train: fit one recipe on one prepared dataset with one seed (resumes a killed run)."""

from smallvision.config import load_params
from smallvision.data.prepared import load_prepared
from smallvision.errors import exits_cleanly
from smallvision.paths import run_paths
from smallvision.progress import log
from smallvision.train.methods import METHODS
from stages import run_arguments


@exits_cleanly
def main() -> None:
    run = run_arguments(__doc__, load_params())
    data = load_prepared(run.dataset)
    summary = METHODS[run.recipe_config.method](run.recipe_config, data, run_paths(*run.key))
    if summary is not None:  # None: a non-main torchrun process, whose rank 0 reports
        log(f"trained {run.recipe} on {run.dataset} (seed {run.seed}) in {summary['train_seconds']:.1f}s")


if __name__ == "__main__":
    main()
