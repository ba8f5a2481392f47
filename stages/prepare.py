"""Stage prepare: decode one dataset once into uint8 arrays with fixed splits."""

from smallvision.config import load_params
from smallvision.data.prepare import prepare_dataset
from smallvision.data.prepared import prepared_path
from smallvision.errors import exits_cleanly
from stages import arguments


@exits_cleanly
def main() -> None:
    args = arguments(__doc__, "dataset")
    cfg = load_params().dataset(args.dataset)
    prepare_dataset(args.dataset, cfg, prepared_path(args.dataset))


if __name__ == "__main__":
    main()
