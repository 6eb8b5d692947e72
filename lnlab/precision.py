"""Numeric precision of training and inference: bf16 autocast on GPUs and on CPUs that support it.

bf16 autocast (``torch.autocast(..., dtype=torch.bfloat16)``) runs the convolutions in bfloat16;
the classifier head, the loss and every stored logit stay float32 (``lnlab.models.float32_head``,
``lnlab.losses.TrainingLoss``). On this project's 2-core AMD EPYC (Zen 4, avx512_bf16) one training
step of the small CPU networks is 1.7–2.0× faster in bf16 than in float32
(``benchmarks/train_speed.py``, benchmarks/RESULTS.md). A CPU without native bf16 (oneDNN reports
none) falls back to float32 with one log line; the run records the precision it actually used.
"""

from __future__ import annotations

import contextlib
import logging
from functools import lru_cache

import torch

log = logging.getLogger("lnlab")


@lru_cache(maxsize=None)
def cpu_bf16_supported() -> bool:
    """Whether this CPU computes bf16 natively (avx512_bf16 / AMX through oneDNN): then bf16 is faster."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


_warned: set[str] = set()


def use_bf16(amp: bool, device: torch.device | str) -> bool:
    """Whether a run with ``amp`` requested computes in bf16 on ``device`` (one log line on fallback)."""
    device = torch.device(device)
    if not amp:
        return False
    if device.type == "cuda":
        return True
    if device.type == "cpu" and cpu_bf16_supported():
        return True
    if device.type not in _warned:
        _warned.add(device.type)
        log.warning("lnlab: bf16 autocast is not supported natively on this %s; computing in float32 "
                    "(slower; results may differ slightly from bf16 runs)", device.type)
    return False


def precision_name(amp: bool, device: torch.device | str) -> str:
    """``"bf16-autocast"`` or ``"float32"``: what a run on ``device`` computes in."""
    return "bf16-autocast" if use_bf16(amp, device) else "float32"


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` when ``enabled`` (from :func:`use_bf16`), else a no-op."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
