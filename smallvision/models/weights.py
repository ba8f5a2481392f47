"""Every torch file the pipeline writes and reads back (a run's best.pt, an SSL backbone.pt, a
resume state.pt) goes through here: saved with the sha256 of its content recorded beside it,
loaded only while it still matches, so a damaged file is named with what rebuilds it instead of
being used (smallvision.core.io.checked_file and verify)."""

from __future__ import annotations

from pathlib import Path

import torch

from smallvision.core.errors import DamagedFile
from smallvision.core.io import checked_file, verify
from smallvision.core.paths import rebuild_advice


def save_weights(state: dict, path: Path) -> None:
    with checked_file(path) as handle:
        torch.save(state, handle)


def load_weights(path: Path, map_location="cpu") -> dict:
    """The tensors saved at `path`, once its checksum matches; any problem is a DamagedFile."""
    verify(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises a different type for each way a file is unreadable
        # Not torch's own message: it advises loading with weights_only=False, which would run
        # whatever code a tampered file holds.
        raise DamagedFile(path, f"matches its checksum but is not a file torch can read ({type(err).__name__})",
                          rebuild_advice(path)) from None
