"""Device choice and per-device settings (threads, precision, memory format)."""

from __future__ import annotations

import random

import numpy as np
import torch

from smallvision.errors import UserError


def resolve_device(name: str) -> torch.device:
    if name in ("auto", "cuda") and torch.cuda.is_available():
        tune_cuda()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device: cuda was asked for, but torch sees no CUDA GPU; use device: auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("device: mps was asked for, but this machine has no Apple GPU; use device: auto or cpu")
    return torch.device(name)


def tune_cuda() -> None:
    """Batch shapes are fixed within a run (the last partial batch is dropped), so cuDNN's
    autotuner pays off; TF32 matrix units for the float32 parts (evaluation, losses)."""
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def configure_threads(threads: int) -> None:
    """`threads: 0` keeps torch's default (the physical cores; OMP_NUM_THREADS overrides it)."""
    if threads:
        torch.set_num_threads(threads)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def use_bf16(precision: str, device: torch.device) -> bool:
    if precision == "bf16" and device.type != "cuda":
        raise UserError("precision: bf16 needs a CUDA device; use precision: auto or fp32")
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


def use_channels_last(setting: str, device: torch.device) -> bool:
    # NHWC is the layout cuDNN's and oneDNN's convolutions prefer: on this 2-core CPU it made
    # the `cnn` recipe's training step 1.45x faster (not measured on MPS, so left off there).
    return setting == "on" or (setting == "auto" and device.type in ("cuda", "cpu"))


def to_float_images(batch: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 in [0, 1]."""
    return batch.float().div_(255)


def random_states(generator: torch.Generator, rng: np.random.Generator, device: torch.device) -> dict:
    """Every random state a run draws from, for its checkpoint (a resumed run repeats them)."""
    return {
        "generator": generator.get_state(),
        "numpy_rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
    }


def restore_random_states(state: dict, generator: torch.Generator, rng: np.random.Generator) -> None:
    generator.set_state(state["generator"].cpu())
    rng.bit_generator.state = state["numpy_rng"]
    torch.set_rng_state(state["torch_rng"].cpu())
    if state["cuda_rng"]:
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
