"""Per-epoch metrics written with dvclive: metrics.json (latest) and plots/metrics/*.tsv,
which `dvc plots show` draws as learning curves."""

from __future__ import annotations

from pathlib import Path


class TrainLog:
    def __init__(self, log_dir: Path):
        from dvclive import Live

        for stale in Path(log_dir).glob("**/*"):
            if stale.is_file() and stale.name != "train.json":
                stale.unlink()
        self.live = Live(str(log_dir), save_dvc_exp=False, dvcyaml=None, report=None)

    def epoch(self, record: dict) -> None:
        """Log one epoch's record ({'epoch': n, metric: value, ...})."""
        self.live.step = record["epoch"]
        for key, value in record.items():
            if key != "epoch" and value is not None:
                self.live.log_metric(key, value)
        self.live.make_summary()
