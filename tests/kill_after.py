"""Run a stage as a job killed (SIGKILL) after epoch N, for the resume tests:

    python -m tests.kill_after N stages.train demo tiny

The kill is injected here, not read by production code: the resumable-run scaffold's
after-epoch hook (called once an epoch is recorded and any checkpoint saved) is replaced by
one that kills this process after epoch N, then the stage runs as `python -m <stage> ...`."""

from __future__ import annotations

import os
import runpy
import signal
import sys

from smallvision.fit.resumable import ResumableRun


def kill_after(epochs: int) -> None:
    """From now on every run in this process dies as a killed job does after epoch `epochs`."""
    def after_epoch(self, done: int) -> None:
        if done == epochs:
            os.kill(os.getpid(), signal.SIGKILL)

    ResumableRun.after_epoch = after_epoch


def main() -> None:
    epochs, stage, *arguments = sys.argv[1:]
    kill_after(int(epochs))
    sys.argv = [stage, *arguments]
    runpy.run_module(stage, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
