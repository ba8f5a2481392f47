"""Stage train: fit one recipe on one prepared dataset with one seed (resumes a killed run)."""

from smallvision.core.errors import exits_cleanly
from smallvision.core.paths import run_paths
from smallvision.core.prepared import load_prepared
from smallvision.core.progress import log
from smallvision.options.params import load_params
from smallvision.train.methods import fit
from stages import run_arguments


@exits_cleanly
def main() -> None:
    run = run_arguments(__doc__, load_params())
    data = load_prepared(run.dataset).with_train_per_class(run.train_per_class, run.seed)
    summary = fit(run.recipe_config, data, run_paths(*run.key))
    if summary is not None:  # None: a non-main torchrun process, whose rank 0 reports
        log(f"trained {run.arm} on {run.dataset} (seed {run.seed}) in {summary['train_seconds']:.1f}s")


if __name__ == "__main__":
    main()
