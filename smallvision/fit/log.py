"""Per-epoch metrics written with dvclive: metrics.json (latest) and plots/metrics/*.tsv,
which `dvc plots show` draws as learning curves.

metrics.json is rewritten after every epoch, so that `dvc metrics show`, `dvc exp show` and
the plots follow a running experiment; it carries `complete: false` until the run's results
are written and `finish()` turns it to `complete: true`. A run killed halfway leaves
`complete: false` beside its last epoch's figures: never to be read as a finished run's."""

from __future__ import annotations

from pathlib import Path

from smallvision.core.paths import COMPLETE


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

    def stopped(self) -> None:
        """The run stopped without results (it diverged): metrics.json says complete: false, even
        when no epoch was logged."""
        self._summary(complete=False)

    def _summary(self, complete: bool) -> None:
        self.live.summary[COMPLETE] = complete
        self.live.make_summary()
