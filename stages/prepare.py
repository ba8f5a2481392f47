"""Stage prepare: decode one dataset once into uint8 arrays with fixed splits."""

import argparse

from smallvision.config import load_params
from smallvision.data.prepare import prepare_dataset
from smallvision.data.prepared import prepared_path
from smallvision.errors import exits_cleanly


@exits_cleanly
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset")
    args = parser.parse_args()
    cfg = load_params().dataset(args.dataset)
    prepare_dataset(args.dataset, cfg, prepared_path(args.dataset))


if __name__ == "__main__":
    main()
