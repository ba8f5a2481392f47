"""Stage pretrain: self-supervised pretraining of one run of ssl.runs (an SSL arm's backbone on one
dataset's training split, without labels, with one seed; resumes a killed run)."""

from smallvision.core.errors import exits_cleanly
from smallvision.core.paths import pretrain_paths
from smallvision.core.prepared import load_prepared
from smallvision.core.progress import log
from smallvision.options.params import load_params
from smallvision.ssl.config import load_ssl_params
from smallvision.ssl.pretrain import load_extra_images, pretrain
from stages import arguments


@exits_cleanly
def main() -> None:
    key = arguments(__doc__, "run").run
    params = load_params()
    ssl = load_ssl_params()
    run = ssl.run(key)
    recipe = ssl.run_recipe(key)
    data = load_prepared(run.dataset, splits=("train", "val"))
    extra = None
    if recipe.extra_images:
        extra = load_extra_images(recipe.extra_images, params.dataset(run.dataset), f"ssl.runs.{key}")
    summary = pretrain(recipe, data, extra, ssl.evaluate.knn, pretrain_paths(run.dataset, run.arm, run.seed))
    speed = summary["pretrain_images_per_second"]
    log(f"pretrained {key} ({summary['method']}): {summary['epochs_run']} epochs in "
        f"{summary['pretrain_seconds']:.1f}s" + (f", {speed:.1f} images/s" if speed else "")
        + f"; kNN accuracy {summary['final'].get('val_knn_accuracy', float('nan')):.4f}, "
          f"embedding spread {summary['final']['embedding_spread']:.3f}, effective rank "
          f"{summary['final']['embedding_rank']:.1f}")


if __name__ == "__main__":
    main()
