"""One clear message for bad input, and a non-zero exit code."""

from __future__ import annotations

import functools
import sys


class UserError(Exception):
    """A problem the user can fix: bad params, bad data, missing files.

    The message says what is wrong, where, and what to do about it.
    """


EXIT_USER_ERROR = 2


def exits_cleanly(main):
    """Wrap a stage's main(): a UserError becomes one line on stderr and exit code 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)

    return wrapper
