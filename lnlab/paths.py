"""Where lnlab reads and writes: dataset root, run cache, figures, decoded-data cache, notebooks.

Every location follows the same order: an explicit argument, else an environment variable, else a
default that depends on how lnlab is installed:

| location | variable | source checkout (``pip install -e .``, ``make env``) | installed package (``pip install .``) |
| --- | --- | --- | --- |
| datasets | ``$LNLAB_DATA`` | ``<checkout>/data`` | ``<user cache>/data`` |
| run cache | ``$LNLAB_RUNS`` | ``<checkout>/runs`` | ``<user cache>/runs`` |
| figures | ``$LNLAB_FIGURES`` | ``<checkout>/figures`` | ``figures/`` in the working directory |
| derived files | ``$LNLAB_CACHE`` | ``<user cache>`` | ``<user cache>`` |
| notebooks | | ``<checkout>/notebooks`` | ``notebooks/`` in the working directory |

``<user cache>`` is ``$XDG_CACHE_HOME/lnlab`` (``~/.cache/lnlab``). An installed package never writes
next to its own code (site-packages): expensive things (datasets, trained runs) go to the user's cache,
where every folder finds them again; figures go where the user is working.
"""

from __future__ import annotations

import os
from pathlib import Path


def _find_checkout() -> Path | None:
    """The source checkout this package is imported from, or None when it is an installed copy."""
    root = Path(__file__).resolve().parent.parent
    try:
        is_checkout = 'name = "lnlab"' in (root / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return None
    return root if is_checkout else None


CHECKOUT: Path | None = _find_checkout()
# The checkout, or the working directory at import for an installed package (kept for older callers).
REPO_ROOT: Path = CHECKOUT if CHECKOUT is not None else Path.cwd()


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Dataset root: ``root``, else ``$LNLAB_DATA``, else ``data/`` in the checkout (installed: the user cache)."""
    return _resolve(root, "LNLAB_DATA", _checkout_or_cache("data"))


def runs_root(root: str | os.PathLike | None = None) -> Path:
    """Run-cache root: ``root``, else ``$LNLAB_RUNS``, else ``runs/`` in the checkout (installed: the user cache)."""
    return _resolve(root, "LNLAB_RUNS", _checkout_or_cache("runs"))


def cache_root(root: str | os.PathLike | None = None) -> Path:
    """Writable cache for derived files (decoded packs, downloads).

    ``root``, else ``$LNLAB_CACHE``, else ``$XDG_CACHE_HOME/lnlab`` (``~/.cache/lnlab``).
    Never the dataset folder itself: packs may live on a read-only mount.
    """
    return _resolve(root, "LNLAB_CACHE", _user_cache())


def figures_root(root: str | os.PathLike | None = None) -> Path:
    """Figure folder: ``root``, else ``$LNLAB_FIGURES``, else ``figures/`` in the checkout (installed: the working directory)."""
    return _resolve(root, "LNLAB_FIGURES", (CHECKOUT or Path.cwd()) / "figures")


def notebooks_root() -> Path:
    """The suite's notebooks: ``notebooks/`` in the checkout, else in the working directory."""
    return (CHECKOUT or Path.cwd()) / "notebooks"


def _user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lnlab"


def _checkout_or_cache(name: str) -> Path:
    return CHECKOUT / name if CHECKOUT is not None else _user_cache() / name


def _resolve(root: str | os.PathLike | None, env_var: str, default: Path) -> Path:
    if root is not None and str(root) != "":
        return Path(root).expanduser().resolve()
    from_env = os.environ.get(env_var)
    if from_env:
        return Path(from_env).expanduser().resolve()
    return default
