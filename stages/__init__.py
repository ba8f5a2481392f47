"""One short script per DVC stage: parse arguments, read params, call the library."""

import argparse


def arguments(doc: str, *names: str) -> argparse.Namespace:
    """The stage's positional arguments (e.g. dataset, recipe), with its docstring as help."""
    parser = argparse.ArgumentParser(description=doc)
    for name in names:
        parser.add_argument(name)
    return parser.parse_args()
