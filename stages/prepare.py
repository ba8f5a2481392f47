"""Stage prepare: decode one dataset once into uint8 arrays with fixed splits; its decode
time and throughput go to reports/prepare/<dataset>/metrics.json."""

from smallvision.core.errors import exits_cleanly
from smallvision.core.io import write_json
from smallvision.core.paths import PREPARE_METRICS
from smallvision.core.prepared import prepared_path
from smallvision.data.prepare import TIMINGS, prepare_dataset
from smallvision.options.params import load_params
from stages import arguments


@exits_cleanly
def main() -> None:
    args = arguments(__doc__, "dataset")
    cfg = load_params().dataset(args.dataset)
    summary = prepare_dataset(args.dataset, cfg, prepared_path(args.dataset))
    write_json(PREPARE_METRICS / args.dataset / "metrics.json", {key: summary[key] for key in TIMINGS})


if __name__ == "__main__":
    main()
