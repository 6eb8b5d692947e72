"""Where and how a run was made: device and its name, precision, torch, lnlab and git commit.

Recorded by the run cache when a run finishes (``config.json``) and carried into exports
(``run.json``), so a shipped reference run says which machine, precision and code produced it.
"""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from lnlab.precision import precision_name


def device_name(device: torch.device | str) -> str:
    """The GPU's name, or the CPU's model name (``/proc/cpuinfo``; ``platform`` elsewhere)."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def git_commit() -> str | None:
    """The commit of the checkout lnlab is imported from (None for an installed copy or without git)."""
    from lnlab.paths import CHECKOUT

    if CHECKOUT is None:
        return None
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=CHECKOUT, capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip() if out.returncode == 0 else ""
    return commit or None


def provenance(device: torch.device | str, amp: bool, wall_seconds: float | None = None) -> dict[str, Any]:
    """The record of a run trained on ``device`` with ``amp`` requested (see the module docstring)."""
    import lnlab
    from lnlab.config import ENGINE_VERSION

    device = torch.device(device)
    return {"device": device.type, "device_name": device_name(device), "threads": torch.get_num_threads(),
            "precision": precision_name(amp, device), "torch_version": torch.__version__,
            "lnlab_version": lnlab.__version__, "engine_version": ENGINE_VERSION, "git_commit": git_commit(),
            "wall_seconds": wall_seconds}
