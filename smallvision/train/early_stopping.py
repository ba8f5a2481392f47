"""Early stopping and best-checkpoint selection on one monitored validation metric."""

from __future__ import annotations

from smallvision.options.train import EarlyStoppingConfig


class EarlyStopping:
    """Tracks the monitored values; `state` round-trips through checkpoints."""

    def __init__(self, cfg: EarlyStoppingConfig, state: dict | None = None):
        self.cfg = cfg
        self.values: list[float] = list((state or {}).get("values", []))
        self.best_epoch: int = (state or {}).get("best_epoch", -1)

    @property
    def state(self) -> dict:
        return {"values": self.values, "best_epoch": self.best_epoch}

    @property
    def best(self) -> float | None:
        return self.values[self.best_epoch] if self.best_epoch >= 0 else None

    def _better(self, value: float, reference: float, margin: float) -> bool:
        return value < reference - margin if self.cfg.mode == "min" else value > reference + margin

    def update(self, value: float) -> bool:
        """Record this epoch's value; True if it is the best so far."""
        self.values.append(value)
        if self.best is None or self._better(value, self.best, 0.0):
            self.best_epoch = len(self.values) - 1
            return True
        return False

    def should_stop(self) -> str | None:
        """The reason to stop now, or None."""
        cfg, epochs = self.cfg, len(self.values)
        if epochs < max(cfg.min_epochs, 1):
            return None
        if cfg.patience:
            window = self.values[-cfg.patience:]
            before = self.values[: epochs - cfg.patience]
            if len(window) == cfg.patience and before:
                reference = min(before) if cfg.mode == "min" else max(before)
                if not any(self._better(v, reference, cfg.min_delta) for v in window):
                    return f"no {cfg.monitor} improvement above {cfg.min_delta} for {cfg.patience} epochs"
        if cfg.spread_window and epochs >= cfg.spread_window:
            window = self.values[-cfg.spread_window:]
            if max(window) - min(window) < cfg.spread_tolerance:
                return f"{cfg.monitor} spread below {cfg.spread_tolerance} over {cfg.spread_window} epochs"
        return None
