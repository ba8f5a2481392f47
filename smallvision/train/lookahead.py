"""Lookahead weight averaging, after airbench: every few optimiser steps the weights are pulled
to a running average of themselves, and the run ends on that average. Early on the average is
forgotten at once (the weights move freely); towards the end it is kept more and more, which
smooths the last, noisy steps of a short large-learning-rate run."""

from __future__ import annotations

import torch
from torch import nn

from smallvision.options.train import LookaheadConfig


class Lookahead:
    def __init__(self, model: nn.Module, cfg: LookaheadConfig, total_steps: int):
        self.model, self.cfg, self.total_steps = model, cfg, max(1, total_steps)
        self.average = {key: value.detach().clone() for key, value in model.state_dict().items()
                        if value.is_floating_point()}
        self.step = 0

    @torch.no_grad()
    def after_step(self) -> None:
        self.step += 1
        if self.step >= self.total_steps:
            self._pull(1.0)
        elif self.step % self.cfg.every == 0:
            self._pull(self.cfg.decay ** self.cfg.every * (self.step / self.total_steps) ** self.cfg.power)

    def _pull(self, keep: float) -> None:
        weights = self.model.state_dict()
        for key, average in self.average.items():
            average.lerp_(weights[key], 1 - keep)
            weights[key].copy_(average)

    def state_dict(self) -> dict:
        return {"step": self.step, "average": self.average}

    def load_state_dict(self, state: dict) -> None:
        self.step = state["step"]
        for key, value in state["average"].items():
            self.average[key].copy_(value)
