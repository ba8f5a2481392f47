"""Stage pretrain: self-supervised pretraining of one SSL recipe's backbone on one dataset's
training split, without labels, with one seed (resumes a killed run)."""

from smallvision.config import load_params
from smallvision.data.prepared import load_prepared
from smallvision.errors import exits_cleanly
from smallvision.paths import pretrain_paths
from smallvision.progress import log
from smallvision.ssl.config import load_ssl_params
from smallvision.ssl.pretrain import load_extra_images, pretrain
from stages import arguments


@exits_cleanly
def main() -> None:
    args = arguments(__doc__, "dataset", "ssl_recipe", "seed")
    params = load_params()
    ssl = load_ssl_params()
    ssl.check_seed(args.seed)
    recipe = ssl.recipe(args.ssl_recipe, args.seed)
    data = load_prepared(args.dataset, splits=("train", "val"))
    extra = None
    if recipe.extra_images:
        extra = load_extra_images(recipe.extra_images, params.dataset(args.dataset), f"ssl.recipes.{args.ssl_recipe}")
    summary = pretrain(recipe, data, extra, ssl.evaluate.knn, pretrain_paths(args.dataset, args.ssl_recipe, args.seed))
    speed = summary["pretrain_images_per_second"]
    log(f"pretrained {args.ssl_recipe} ({summary['method']}) on {args.dataset}, seed {args.seed}: {summary['epochs_run']} epochs in "
        f"{summary['pretrain_seconds']:.1f}s" + (f", {speed:.1f} images/s" if speed else "")
        + f"; kNN accuracy {summary['final'].get('val_knn_accuracy', float('nan')):.4f}, "
          f"embedding spread {summary['final']['embedding_spread']:.3f}, effective rank "
          f"{summary['final']['embedding_rank']:.1f}")


if __name__ == "__main__":
    main()
