"""Runs on demand: ``get_run(config)`` returns the cached run of a config, or trains (resumes) it.

The cache's storage (layout, manifest, verification, :class:`Run`) is :mod:`lnlab.store`; this module
decides where a run comes from. A cache folder may hold a run trained here (verified by
:func:`lnlab.store.load_run`; a missing, truncated or corrupt file triggers a warning and a
recomputation, resuming from ``checkpoint.pt`` when that is intact, so a run killed at any point
resumes from its last completed epoch) or a *portable* run (``lnlab import``: history and logits,
maybe float16 weights; :mod:`lnlab.portable`), which is loaded as a ``PortableRun`` and never
retrained or overwritten. A key missing from the cache is looked up in the read-only reference
source (:mod:`lnlab.shipped`: the shipped runs) before anything is trained, so a notebook asking for
a shipped run never trains it; ``lnlab train --force`` retrains a run into the cache.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Callable, Iterable

from lnlab import train as training  # the module: tests replace training.train
from lnlab.config import TrainConfig
from lnlab.paths import runs_root
from lnlab.portable import is_portable, load_portable
from lnlab.profiles import make_config
from lnlab.provenance import provenance
from lnlab.shipped import find_portable, reference_root
from lnlab.store import (CHECKPOINT, LOCK, MANIFEST, RESULT_FILES, CacheError, Run, Seeds, exclusive,
                         forget_directory, load_run, save_run)

__all__ = ["Run", "Seeds", "get_run", "forget_run", "is_cached", "load_run", "list_runs", "get_pair", "CacheError"]


def get_run(config: TrainConfig, root: str | os.PathLike | None = None, progress: bool = True,
            callbacks: Iterable[Callable[[int, dict], None]] = (), train: bool = True, reference: bool = True) -> Run:
    """The run of ``config`` from the cache under ``root`` (else ``$LNLAB_RUNS``, else ``runs/``),
    else trained (or resumed from its checkpoint) if ``train``, also when its cache entry is corrupt.
    The reference source is looked up before training; ``train=False`` raises ``CacheError`` where
    neither has the run.

    Only the training fields pick the cache entry (``TrainConfig.key``): a config that differs in
    evaluation fields only (e.g. ``ood``) reuses the run, and its new sets are evaluated from the
    saved weights on first use. A portable run is returned as it is, never retrained.
    ``reference=False`` skips the reference source (``lnlab train --force``).
    """
    config.validate()
    directory = runs_root(root) / config.key()
    portable = find_portable(directory, reference=reference)
    if portable is not None:
        run = load_portable(portable, config)
        if portable != directory:  # a shipped run: results computed from its weights go to the cache
            run.eval_home = directory
        return run
    if not train and not (directory / MANIFEST).exists():
        raise CacheError(f"run {config.key()} ({config.label()}, seed {config.seed}) is not in the run cache "
                         f"{directory.parent} or the reference source {reference_root()}; train it or import it "
                         "(`lnlab import`)")
    directory.mkdir(parents=True, exist_ok=True)
    with exclusive(directory / LOCK):  # a second process asking for the same run waits, then loads it
        if (directory / MANIFEST).exists():
            try:
                run = load_run(directory, config)
                run.from_cache = True
                return run
            except CacheError as exc:
                if not train:
                    raise CacheError(f"run cache {directory}: {exc}; train it again (train=True)") from None
                warnings.warn(f"run cache {directory}: {exc}; recomputing", stacklevel=2)
                for name in (MANIFEST, *RESULT_FILES):
                    (directory / name).unlink(missing_ok=True)
        return _train_and_save(config, directory, progress, callbacks)


def is_cached(config: TrainConfig, root: str | os.PathLike | None = None) -> bool:
    """Whether the cache under ``root`` holds a verified run of ``config`` (with weights, or portable):
    :func:`get_run` loads it without training."""
    directory = runs_root(root) / config.validate().key()
    try:
        portable = find_portable(directory, reference=False)
        if portable is not None:
            load_portable(portable, config)
        else:
            load_run(directory, config)
        return True
    except CacheError:
        return False


def forget_run(config: TrainConfig, root: str | os.PathLike | None = None) -> bool:
    """Delete the cache entry of ``config`` (weights, results, checkpoint) so that it trains again;
    True if there was one. The reference source is never touched."""
    return forget_directory(runs_root(root) / config.validate().key())


def get_pair(profile: str = "ci", tau: float = 0.04, root: str | os.PathLike | None = None,
             progress: bool = True, **overrides: Any) -> dict[str, Run]:
    """The CE and LogitNorm (``tau``) runs of a profile: ``{"ce": Run, "logitnorm": Run}``."""
    return {loss: get_run(make_config(profile, loss=loss, tau=tau, **overrides), root=root, progress=progress)
            for loss in ("ce", "logitnorm")}


def _train_and_save(config: TrainConfig, directory, progress: bool, callbacks) -> Run:
    result = training.train(config, checkpoint_path=directory / CHECKPOINT, progress=progress, callbacks=callbacks)
    record = provenance(config.resolved_device(), config.amp, sum(float(r.get("seconds", 0)) for r in result.history))
    return save_run(config, directory, result, record)


def list_runs(root: str | os.PathLike | None = None) -> list[Run]:
    """Every finished, intact run under the cache root, portable ones too (e.g. to plot each LogitNorm
    run's final loss against its bound); incomplete or corrupt entries are skipped silently."""
    runs = []
    base = runs_root(root)
    for directory in sorted(base.glob("[!.]*/")) if base.is_dir() else []:  # not staging folders
        try:
            runs.append(load_portable(directory) if is_portable(directory) else load_run(directory))
        except (CacheError, ValueError):
            continue
    for run in runs:
        run.from_cache = True
    return runs
