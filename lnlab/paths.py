"""Where lnlab reads and writes: dataset root, run cache, decoded-data cache.

Every location follows the same order: an explicit argument, else an environment variable,
else a folder at the repository root (or the user's cache folder for derived files).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Dataset root: ``root``, else ``$LNLAB_DATA``, else ``data/`` at the repository root."""
    return _resolve(root, "LNLAB_DATA", REPO_ROOT / "data")


def runs_root(root: str | os.PathLike | None = None) -> Path:
    """Run-cache root: ``root``, else ``$LNLAB_RUNS``, else ``runs/`` at the repository root."""
    return _resolve(root, "LNLAB_RUNS", REPO_ROOT / "runs")


def cache_root(root: str | os.PathLike | None = None) -> Path:
    """Writable cache for derived files (decoded packs, downloads).

    ``root``, else ``$LNLAB_CACHE``, else ``$XDG_CACHE_HOME/lnlab`` (``~/.cache/lnlab``).
    Never the dataset folder itself: packs may live on a read-only mount.
    """
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return _resolve(root, "LNLAB_CACHE", Path(xdg) / "lnlab")


def figures_root(root: str | os.PathLike | None = None) -> Path:
    """Figure folder: ``root``, else ``$LNLAB_FIGURES``, else ``figures/`` at the repository root."""
    return _resolve(root, "LNLAB_FIGURES", REPO_ROOT / "figures")


def _resolve(root: str | os.PathLike | None, env_var: str, default: Path) -> Path:
    if root is not None and str(root) != "":
        return Path(root).expanduser().resolve()
    from_env = os.environ.get(env_var)
    if from_env:
        return Path(from_env).expanduser().resolve()
    return default
