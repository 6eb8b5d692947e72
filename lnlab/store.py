"""The run cache's storage: a finished run's folder, written and verified (``lnlab.runs`` fills it).

Layout: ``runs_root(root)/<config.key()>/`` with ``config.json`` (the config, the sets its history
tracks, provenance: ``lnlab.provenance``), ``history.json``, ``logits.pt`` (raw logits + test labels
+ class names), ``snapshots.pt`` (float16 test and OOD logits at a few epochs along training,
``lnlab.train.SNAPSHOT_FRACTIONS``), ``model.pt`` (final weights),
``checkpoint.pt`` while training, and ``manifest.json`` written *last* with the sha256 of every
result file. Every file is written atomically (:mod:`lnlab.atomic`). :func:`load_run` verifies the
manifest and raises ``CacheError`` naming a missing, truncated or corrupt file. Whole folders (a run
sent back by a sweep worker, an imported export) enter the cache through :func:`replace_folder`:
built beside their place, verified, then renamed into it.

This module sits below training and the reference source: it imports neither (tests/test_layers.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from lnlab import evaluate
from lnlab.atomic import atomic_torch_save, atomic_write_json, sha256_file
from lnlab.config import ID_SET_NAMES, TrainConfig
from lnlab.models import build_for
from lnlab.splits import VALIDATION_OOD_SETS, eval_set

__all__ = ["Run", "Seeds", "CacheError", "load_run", "save_run", "forget_directory", "replace_folder", "exclusive",
           "RESULT_FILES", "MANIFEST", "CHECKPOINT", "LOCK"]

RESULT_FILES = ("config.json", "history.json", "logits.pt", "snapshots.pt", "model.pt")
MANIFEST = "manifest.json"
CHECKPOINT = "checkpoint.pt"
LOCK = ".lock"


class CacheError(ValueError):
    """A cached run is incomplete, corrupt or absent (the message says which file and why, and what to do)."""


@dataclass
class Run:
    """A finished training run, loaded from the cache (see the module docstring for the files).

    ``config`` is the configuration the run was asked for: its training fields equal the trained
    ones (same key); its evaluation fields (``ood``, ``ood_limit``, ``test_subset_per_class``) say
    what ``logits``, ``labels`` and ``test_acc`` refer to. ``history`` is what training recorded
    every epoch: norm statistics of ``history_sets``, the fixed family :func:`lnlab.splits.tracked_sets`
    of its training time (a run trained before engine version 3 may cover fewer sets).
    ``provenance`` says where and how it was trained (``lnlab.provenance``).
    """

    config: TrainConfig
    key: str
    directory: Path
    history: list[dict]
    classes: list[str] = field(default_factory=list)
    from_cache: bool = False
    provenance: dict = field(default_factory=dict)
    tracked: list[str] = field(default_factory=list)

    @property
    def history_sets(self) -> list[str]:
        """The sets with per-epoch norm statistics in ``history`` (``norm_<set>_mean`` columns), in the
        order training tracked them (``lnlab.splits.tracked_sets``) where the run recorded it."""
        row = self.history[0] if self.history else {}
        found = [k[len("norm_"):-len("_mean")] for k in row if k.startswith("norm_") and k.endswith("_mean")]
        ordered = [n for n in self.tracked if n in found]
        return ordered + sorted(n for n in found if n not in ordered)

    @property
    def snapshot_epochs(self) -> list[int]:
        """Epochs with stored test and OOD logits (:meth:`snapshot`), the last epoch included."""
        return sorted({*self._snapshots(), len(self.history)})

    def snapshot(self, epoch: int, name: str) -> torch.Tensor:
        """Float32 raw logits of set ``name`` ("test" or an OOD set) after ``epoch`` epochs; the last epoch
        gives :meth:`logits_for`. ValueError naming the epochs and sets stored otherwise."""
        if epoch == len(self.history):
            return self.logits_for(name)
        stored = self._snapshots()
        if epoch not in stored or name not in stored[epoch]:
            sets = sorted(next(iter(stored.values()), {}))
            raise ValueError(f"run {self.key} ({self.config.label()}) stores logits at epochs {self.snapshot_epochs} for "
                             f"the sets {sets}, not {name!r} at epoch {epoch}; pick one of those")
        return stored[epoch][name].float()

    def _snapshots(self) -> dict[int, dict[str, torch.Tensor]]:
        memo = self.__dict__
        if "_snapshot_memo" not in memo:
            path = self.directory / "snapshots.pt"
            memo["_snapshot_memo"] = ({int(k): v for k, v in torch.load(path, map_location="cpu", weights_only=True).items()}
                                      if path.is_file() else {})
        return memo["_snapshot_memo"]

    def logits_for(self, name: str) -> torch.Tensor:
        """Float32 raw logits on any evaluation set, computed once from the weights (``lnlab.evaluate``)."""
        return evaluate.logits_for(self, name)

    def labels_for(self, name: str) -> torch.Tensor:
        """Labels of an ID evaluation set: "test", "val" (held-out training images) or "train"."""
        return evaluate.labels_for(self, name)

    @property
    def logits(self) -> dict[str, torch.Tensor]:
        """``{"test": …, <each set in config.ood>: …}``: float32 raw logits (see :meth:`logits_for`)."""
        return {name: self.logits_for(name) for name in ("test", *self.config.ood)}

    @property
    def labels(self) -> torch.Tensor:
        """Labels of the ID test set (``config.test_subset_per_class`` per class if set)."""
        return self.labels_for("test")

    @property
    def final_train_loss(self) -> float:
        """Mean training loss of the last epoch (compare with ``lnlab.losses.lower_bound``, Prop. 3)."""
        return float(self.history[-1]["train_loss"])

    @property
    def test_acc(self) -> float:
        """Accuracy on the ID test set of ``config`` (fraction)."""
        return float((self.logits_for("test").argmax(1) == self.labels).float().mean())

    def history_frame(self):
        """The history as a pandas DataFrame indexed by epoch."""
        import pandas as pd

        return pd.DataFrame(self.history).set_index("epoch")

    @property
    def has_weights(self) -> bool:
        """Whether :meth:`model` can load the trained network (a portable run has none)."""
        return True

    def model(self) -> nn.Module:
        """The network with its final weights, on CPU, in eval mode."""
        net = build_for(self.config, len(self.classes))
        net.load_state_dict(torch.load(self.directory / "model.pt", map_location="cpu", weights_only=True))
        return net.eval()

    def __repr__(self) -> str:
        return (f"Run({self.config.label()}, {self.config.model}, seed={self.config.seed}, key={self.key!r}, "
                f"epochs={len(self.history)}, from_cache={self.from_cache})")


class Seeds(list):
    """The runs of one configuration over several seeds (``comparison_runs(seeds=…)``).

    Attribute access reads the first seed's run, so code written for one run (figures, widgets)
    works unchanged; :func:`lnlab.evaluate.ood_table` and the figures that show a spread use all.
    """

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or not len(self):
            raise AttributeError(name)
        return getattr(self[0], name)

    @property
    def seeds(self) -> list[int]:
        return [run.config.seed for run in self]


def forget_directory(directory: Path) -> bool:
    """Delete what a run folder holds (weights, results, checkpoint; not its lock) so that it trains
    again; True if there was a folder."""
    if not directory.is_dir():
        return False
    with exclusive(directory / LOCK):
        for path in directory.iterdir():
            if path.name != LOCK:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    return True


def replace_folder(target: Path, fill: Callable[[Path], None], verify: Callable[[Path], Any]) -> None:
    """Put a whole run folder at ``target``: ``fill(staging)`` writes it into a hidden folder beside
    ``target``, ``verify(staging)`` must pass, then renames swap it in (old ``eval/`` results, a
    checkpoint or an older copy at ``target`` go with the replaced folder). Nothing is left behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".stage-{target.name}-", dir=target.parent))
    old = None
    try:
        fill(staging)
        verify(staging)
        staging.chmod(0o755)  # mkdtemp makes it private
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".replaced-{target.name}-", dir=target.parent))
            os.replace(target, old / target.name)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an advisory lock on ``path`` (POSIX ``flock``; a no-op where that does not exist)."""
    try:
        import fcntl
    except ImportError:  # Windows: no cross-process guard
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def save_run(config: TrainConfig, directory: Path, result: Any, provenance: dict) -> Run:
    """Write a finished training (``lnlab.train.TrainResult``) into ``directory``: the result files,
    then the manifest, then drop the checkpoint; the final logits training computed become the
    evaluation cache's first entries (``lnlab.evaluate``). Returns the run."""
    shutil.rmtree(directory / evaluate.EVAL_DIR, ignore_errors=True)  # results of earlier weights (a recomputed run)
    # The stored config names the OOD sets it tracked (not only those its first caller asked for).
    oods = tuple(n for n in result.tracked if n not in ID_SET_NAMES and n not in VALIDATION_OOD_SETS)
    stored = config.replace(ood=oods)
    atomic_write_json(directory / "config.json", {"key": config.key(), "config": stored.to_dict(),
                                                  "canonical": config.canonical(), "history_sets": result.tracked,
                                                  "provenance": provenance})
    atomic_write_json(directory / "history.json", result.history)
    atomic_torch_save(directory / "logits.pt", {"logits": result.logits, "labels": result.labels,
                                                "classes": result.classes})
    atomic_torch_save(directory / "snapshots.pt", result.snapshots)
    atomic_torch_save(directory / "model.pt", result.state_dict)
    atomic_write_json(directory / MANIFEST, {"key": config.key(),
                                             "files": {n: sha256_file(directory / n) for n in RESULT_FILES}})
    (directory / CHECKPOINT).unlink(missing_ok=True)
    for name, logits in result.logits.items():
        evaluate.store_tensor(directory / evaluate.EVAL_DIR /
                              f"logits-{evaluate.entry_name(name, eval_set(config, name).images)}.pt", logits)
    return Run(config, config.key(), directory, result.history, result.classes, provenance=provenance,
               tracked=list(result.tracked))


def load_run(directory: str | os.PathLike, config: TrainConfig | None = None) -> Run:
    """Load a finished run from its folder, verifying every file against ``manifest.json``.

    ``config`` (same key) sets the evaluation fields of the returned run; default: the trained
    config. Raises ``CacheError`` if the run is incomplete or any file is missing or corrupt.
    """
    directory = Path(directory)
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CacheError(f"{MANIFEST} is missing or unreadable ({type(exc).__name__})") from None
    for name in RESULT_FILES:
        path = directory / name
        if not path.is_file():
            raise CacheError(f"{name} is missing")
        if sha256_file(path) != files.get(name):
            raise CacheError(f"{name} does not match its checksum (truncated or modified)")
    try:
        meta = json.loads((directory / "config.json").read_text())
        trained = TrainConfig.from_dict(meta["config"])
        history = json.loads((directory / "history.json").read_text())
        saved = torch.load(directory / "logits.pt", map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means the cache entry is unusable
        raise CacheError(f"cannot read the run ({type(exc).__name__}: {exc})") from None
    if config is not None and config.key() != trained.key():
        raise CacheError(f"the run in {directory} has key {trained.key()}, not {config.key()}")
    return Run(config or trained, meta["key"], directory, history, list(saved["classes"]),
               provenance=meta.get("provenance", {}), tracked=list(meta.get("history_sets", [])))
