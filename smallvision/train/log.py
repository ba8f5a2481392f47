"""Per-epoch metrics written with dvclive: metrics.json (latest) and plots/metrics/*.tsv,
which `dvc plots show` draws as learning curves.

metrics.json is rewritten after every epoch, so that `dvc metrics show`, `dvc exp show` and
the plots follow a running experiment; it carries `complete: false` until the run's results
are written and `finish()` turns it to `complete: true`. A run killed halfway leaves
`complete: false` beside its last epoch's figures: never to be read as a finished run's."""

from __future__ import annotations

import json
from pathlib import Path

COMPLETE = "complete"  # the key in metrics.json: true once the run has ended and its results are written
METRICS = "metrics.json"


class TrainLog:
    def __init__(self, log_dir: Path):
        from dvclive import Live

        for stale in Path(log_dir).glob("**/*"):
            if stale.is_file() and stale.name != "train.json":
                stale.unlink()
        self.live = Live(str(log_dir), save_dvc_exp=False, dvcyaml=None, report=None)

    def epoch(self, record: dict) -> None:
        """Log one epoch's record ({'epoch': n, metric: value, ...}); the run is not complete."""
        self.live.step = record["epoch"]
        for key, value in record.items():
            if key != "epoch" and value is not None:
                self.live.log_metric(key, value)
        self._summary(complete=False)

    def finish(self, record: dict | None = None) -> None:
        """The run has ended and its results are written: log its last `record`, if given (a
        run of one step), and mark metrics.json complete."""
        if record is not None:
            self.epoch(record)
        self._summary(complete=True)

    def _summary(self, complete: bool) -> None:
        self.live.summary[COMPLETE] = complete
        self.live.make_summary()


def run_complete(log_dir: Path) -> bool:
    """Whether the run logging to `log_dir` has ended (metrics.json says `complete: true`); not
    for a run that is still going, was killed, or never logged."""
    path = Path(log_dir) / METRICS
    return path.exists() and json.loads(path.read_text()).get(COMPLETE) is True
