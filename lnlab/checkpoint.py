"""Per-epoch training checkpoints: written atomically, read defensively.

A checkpoint holds the model, optimizer and scheduler states, the number of completed epochs
the history so far and the logits kept at snapshot epochs. Because every epoch re-seeds its randomness from ``(seed, epoch)``,
resuming from it reproduces an uninterrupted run exactly on CPU.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch

from lnlab.atomic import atomic_torch_save

FORMAT = 1


def save_checkpoint(path: str | os.PathLike, key: str, epoch: int, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, scheduler: Any, history: list[dict],
                    snapshots: dict | None = None) -> None:
    """Write the state after ``epoch`` completed epochs (temp file + rename); ``snapshots``: the logits
    kept at earlier epochs (``lnlab.train.SNAPSHOT_FRACTIONS``)."""
    atomic_torch_save(path, {
        "format": FORMAT, "key": key, "epoch": epoch, "history": history, "snapshots": snapshots or {},
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
    })


def load_checkpoint(path: str | os.PathLike | None, key: str) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it exists, is readable and belongs to config ``key``; else None.

    An unreadable (truncated, corrupt) checkpoint or one of another config is discarded with a
    warning, and training starts from scratch.
    """
    if path is None or not Path(path).exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        problem = None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            problem = "it has an unknown format"
        elif state.get("key") != key:
            problem = f"it belongs to config {state.get('key')!r}, not {key!r}"
        elif len(state["history"]) != state["epoch"]:
            problem = "its history does not match its epoch"
    except Exception as exc:  # noqa: BLE001 - any failure to read means the file is unusable
        problem = f"it cannot be read ({type(exc).__name__}: {exc})"
    if problem is None:
        return state
    warnings.warn(f"discarding checkpoint {path}: {problem}; training from scratch", stacklevel=3)
    Path(path).unlink(missing_ok=True)
    return None
