"""Device choice and per-device settings (threads, precision, memory format)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import random
import sys

import numpy as np
import torch

from smallvision.core.errors import UserError
from smallvision.core.progress import log


def resolve_device(name: str) -> torch.device:
    """The device `name` asks for, with this project's settings for it."""
    device = pick_device(name)
    if device.type == "cuda":
        tune_cuda()
    elif device.type == "cpu":
        keep_freed_memory()
    return device


def pick_device(name: str) -> torch.device:
    """The device `name` asks for, with torch's and the C library's defaults left as they are."""
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


# glibc's mallopt parameters (malloc.h) and the size below which freed memory stays in the process.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
KEEP_FREED_BYTES = 1 << 30


@functools.cache
def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed blocks of up to 1 GiB for reuse. By default it maps every
    block over 32 MiB afresh from the kernel and unmaps it on free, so each training step
    page-faults its large activations in again: on the 2-core CPU the `cnn` step at 64 px took
    ~27,000 page faults and a sixth of its time in the kernel; kept, ~500 and under 1%, for ~10%
    more resident memory (the heap settles holding a few of the largest blocks). PyTorch has no
    caching allocator on the CPU to do this. Set MALLOC_MMAP_THRESHOLD_ (or GLIBC_TUNABLES) to
    choose otherwise; returns whether the setting was made (glibc only)."""
    if not sys.platform.startswith("linux"):
        return False
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") or "malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, KEEP_FREED_BYTES) and libc.mallopt(M_TRIM_THRESHOLD, KEEP_FREED_BYTES))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False


def configure_threads(threads: int) -> None:
    """`threads: 0` keeps torch's default (the physical cores; OMP_NUM_THREADS overrides it)."""
    if threads:
        torch.set_num_threads(threads)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def stream_seed(seed: int, stream: str, rank: int = 0) -> int:
    """The seed of one named random stream of a run (batch order, augmentation, mixing, views), never
    the run's seed itself: torch.Generator().manual_seed(s) repeats torch.manual_seed(s)'s
    draws, so such a generator would replay the random numbers of the initial weights and the
    dropout masks as its batch order and shifts (on the sprites the cnn then averaged a point
    below the ImageFolder peer over 16 seeds; with its own streams, level with it over 32)."""
    return int(np.random.SeedSequence([seed, rank, *stream.encode()]).generate_state(1)[0])


def use_bf16(precision: str, device: torch.device) -> bool:
    """Whether to train under bf16 autocast (weights and optimiser state stay fp32). `auto`: on
    CUDA. `bf16`: on CUDA, and on CPUs with bf16 arithmetic (AVX512-BF16 or AMX), where the
    `cnn` step ran 1.64x and the `mlp` step 1.40x faster on the 2-core CPU (EfficientNet-Lite0's
    ran 2.2x slower, its depthwise convolutions: its recipes keep `auto`). Elsewhere bf16 would
    be emulated, slower than fp32: those devices train in fp32 and say so."""
    if precision == "fp32":
        return False
    if device.type == "cuda":
        return True
    if precision == "bf16":
        if device.type == "cpu" and cpu_has_bf16_arithmetic():
            return True
        log(f"precision: bf16 asked for, but this {device.type} has no bf16 arithmetic: training in fp32")
    return False


def cpu_has_bf16_arithmetic() -> bool:
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch's private probes: may go
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


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
