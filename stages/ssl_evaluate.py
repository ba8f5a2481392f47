"""Stage ssl_evaluate: kNN, linear-probe and fine-tune test accuracy of one pretrained backbone
(one SSL recipe's, one seed's)."""

from smallvision.config import load_params
from smallvision.data.prepared import load_prepared
from smallvision.errors import exits_cleanly
from smallvision.paths import ssl_eval_dir
from smallvision.ssl.config import load_ssl_params
from smallvision.ssl_evaluate import evaluate_pretrained
from stages import arguments


@exits_cleanly
def main() -> None:
    args = arguments(__doc__, "dataset", "ssl_recipe", "seed")
    params = load_params()
    ssl = load_ssl_params()
    ssl.check_seed(args.seed)
    evaluate_pretrained(args.dataset, args.ssl_recipe, args.seed, ssl, load_prepared(args.dataset),
                        params.evaluate.top_k, ssl_eval_dir(args.dataset, args.ssl_recipe, args.seed))


if __name__ == "__main__":
    main()
