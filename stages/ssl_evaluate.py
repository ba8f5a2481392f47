"""Stage ssl_evaluate: kNN, linear-probe and fine-tune test accuracy of one pretrained backbone
(one run of ssl.runs)."""

from smallvision.core.errors import exits_cleanly
from smallvision.core.paths import ssl_eval_dir
from smallvision.core.prepared import load_prepared
from smallvision.options.params import load_params
from smallvision.ssl.config import load_ssl_params
from smallvision.ssl_evaluate import evaluate_pretrained
from stages import arguments


@exits_cleanly
def main() -> None:
    key = arguments(__doc__, "run").run
    params = load_params()
    ssl = load_ssl_params()
    run = ssl.run(key)
    evaluate_pretrained(key, ssl, load_prepared(run.dataset), params.evaluate.top_k,
                        ssl_eval_dir(run.dataset, run.arm, run.seed))


if __name__ == "__main__":
    main()
