"""Run metadata for the report: commit, params hash, device, library versions, date."""

from __future__ import annotations

import datetime
import hashlib
import platform
import subprocess
from importlib import metadata
from pathlib import Path

LIBRARIES = ["torch", "torchvision", "timm", "scikit-learn", "numpy", "dvc", "dvclive", "pillow"]


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return sha + (" (with uncommitted changes)" if uncommitted_files() else "")


def uncommitted_files() -> list[str]:
    """Tracked files that differ from the commit, from the repository root: what a run's commit
    does not hold. dvc.lock is rewritten by the run itself, and params.yaml is named by its md5
    beside the commit (`profile` and `dvc exp run -S` edit it), so neither counts."""
    try:
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)",
                                 ":(top,exclude)dvc.lock", ":(top,exclude)params.yaml"],
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    return sorted(line[3:].split(" -> ")[-1] for line in status.splitlines())  # "XY path", "R  old -> new"


def device_description() -> str:
    import torch

    if torch.cuda.is_available():
        return f"CUDA: {torch.cuda.get_device_name(0)}"
    cpu = cpuinfo("model name").get("model name") or platform.processor() or platform.machine()
    return f"CPU: {cpu}, {torch.get_num_threads()} threads"


def cpuinfo(*keys: str) -> dict[str, str]:
    """The first processor's values of `keys` in /proc/cpuinfo, in that order; {} off Linux."""
    found = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            found.setdefault(key.strip(), value.strip())
    except OSError:
        return {}
    return {key: found[key] for key in keys if key in found}


def cpu_identity() -> str:
    """What tells two CPUs of one model name apart in figures: the CPU's family, model and stepping,
    and the instruction set torch's kernels use (it picks their arithmetic). Two 2-core VMs named
    "AMD EPYC" fine-tuned EfficientNet-Lite0 on digits to 0.963 and 0.978, same code and versions."""
    import torch

    fields = cpuinfo("cpu family", "model", "stepping")
    chip = ", ".join(f"{key} {value}" for key, value in fields.items()) or platform.machine()
    return f"{chip}; torch kernels {torch.backends.cpu.get_cpu_capability()}"


def run_metadata(params_file: str = "params.yaml") -> dict:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "git_commit": git_commit(),
        "uncommitted": uncommitted_files(),
        "params_md5": hashlib.md5(Path(params_file).read_bytes()).hexdigest(),
        "device": device_description(),
        "cpu": cpu_identity(),
        "python": platform.python_version(),
        "libraries": versions,
    }
