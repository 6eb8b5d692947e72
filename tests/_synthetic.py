"""Synthetic histories, logits and Run stand-ins for the plot / widget tests (no training)."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from lnlab.config import TrainConfig  # noqa: E402

SPLITS = ("train", "test", "textures", "mnist")
OODS = ("textures", "mnist")


def history(loss: str, epochs: int = 6, splits: tuple[str, ...] = SPLITS, seed: int = 0) -> pd.DataFrame:
    """A fake run history: CE norms grow with the epoch, LogitNorm norms spike then settle."""
    rng = np.random.default_rng(seed)
    rows = []
    for epoch in range(1, epochs + 1):
        row = {"epoch": epoch, "train_loss": 1.0 / epoch, "test_acc": 0.5 + 0.05 * epoch}
        for i, split in enumerate(splits):
            mean = 5.0 + 2.0 * epoch if loss == "ce" else 10.0 + 500.0 / (epoch + i)
            mean *= 1.0 + 0.01 * rng.standard_normal()
            row.update({f"norm_{split}_mean": mean, f"norm_{split}_median": 0.95 * mean,
                        f"norm_{split}_p10": 0.6 * mean, f"norm_{split}_p90": 1.4 * mean})
        rows.append(row)
    return pd.DataFrame(rows).set_index("epoch")


def logits(loss: str, n: int = 300, k: int = 10, oods: tuple[str, ...] = OODS,
           seed: int = 0) -> dict[str, torch.Tensor]:
    """Fake cached logits: ID rows peak at their class, each OOD set has a different spread."""
    g = torch.Generator().manual_seed(seed)
    scale = 8.0 if loss == "ce" else 3.0
    labels = torch.randint(0, k, (n,), generator=g)
    test = torch.randn(n, k, generator=g)
    test[torch.arange(n), labels] += scale
    out = {"test": test}
    for j, name in enumerate(oods):
        out[name] = torch.randn(n, k, generator=g) * (1.0 + 2.0 * j)
    return out


def fake_run(loss: str, tau: float = 0.04, seed: int = 0, epochs: int = 6) -> SimpleNamespace:
    """Something shaped like lnlab.runs.Run for the parts plots / widgets use."""
    frame = history(loss, epochs=epochs, seed=seed)
    cached = logits(loss, seed=seed)
    return SimpleNamespace(
        config=TrainConfig(loss=loss, tau=tau, dataset="cifar10", model="fastnet", ood=OODS, seed=seed),
        history=frame.reset_index().to_dict("records"),
        history_frame=lambda: frame,
        logits=cached,
        logits_for=cached.__getitem__,
        final_train_loss=float(frame["train_loss"].iloc[-1]),
    )
