"""One clear message for bad input, and a non-zero exit code."""

from __future__ import annotations

import errno
import functools
import sys


class UserError(Exception):
    """A problem the user can fix: bad params, bad data, missing files.

    The message says what is wrong, where, and what to do about it.
    """


class DamagedFile(UserError):
    """A file the pipeline wrote (weights, a resume state) that no longer holds what was written:
    `problem` says how it differs, the message adds what rebuilds it."""

    def __init__(self, path, problem: str, advice: str):
        super().__init__(f"{path} {problem}: {advice}")
        self.path, self.problem = path, problem


EXIT_USER_ERROR = 2

# A full disk (or quota) is the user's to fix, not a bug: a message, not a traceback.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def disk_full(err: OSError, writing, left: str = "nothing was written there") -> UserError:
    """The message for a write to `writing` that failed for lack of space; `left`: what the failed
    write left behind."""
    return UserError(f"no space left on the disk while writing {writing} ({err.strerror}); {left}. Free some "
                     "space on that disk (or move the project to a larger one) and rerun")


def exits_cleanly(main):
    """Wrap a stage's main(): a UserError (or a full disk) becomes one line on stderr and exit code 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
        except OSError as err:
            if err.errno not in DISK_FULL:
                raise
            left = "the stage stopped before its outputs were complete"  # a write outside the atomic writers
            print(f"error: {disk_full(err, err.filename or 'an output', left)}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)

    return wrapper
