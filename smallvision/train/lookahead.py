"""Lookahead weight averaging, after airbench: every few optimiser steps the weights are pulled
to a running average of themselves, and the run ends on that average. Early on the average is
forgotten at once (the weights move freely); towards the end it is kept more and more, which
smooths the last, noisy steps of a short large-learning-rate run."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from smallvision.schema import Strict


class LookaheadConfig(Strict):
    """Every `every` steps: average = d x average + (1 - d) x weights, then weights = average,
    with d = decay^every x (step / last step)^power. After the last step the weights are the
    average. Batch-norm statistics are averaged too."""

    every: int = Field(5, ge=1)
    decay: float = Field(0.95, gt=0, lt=1)
    power: float = Field(3.0, ge=0)


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
