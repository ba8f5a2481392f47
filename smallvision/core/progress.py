"""Progress bars on a terminal; silence in CI logs and pipes."""

from __future__ import annotations

import os
import sys

# not tqdm.auto: inside the report's notebook kernel it wants widgets
from tqdm import tqdm


def bars_enabled() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


def progress(iterable=None, **kwargs):
    """tqdm that stays quiet when stderr is not a terminal or CI is set."""
    kwargs.setdefault("disable", not bars_enabled())
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("leave", False)
    return tqdm(iterable, **kwargs)


def log(message: str) -> None:
    """One line of stage output (stdout, flushed so DVC shows it as it happens)."""
    print(message, flush=True)
