"""Test environment: point lnlab at the offline data packs and a reusable decode cache.

``LNLAB_DATA``: if unset, ``<repo>/../shared/data`` (a checkout next to the packs), else
``/work/shared/data`` when that exists. ``LNLAB_CACHE``: if unset, a folder under the system
temp directory that survives between test runs, so CIFAR-10's JPEGs are decoded once.
"""

from __future__ import annotations

import getpass
import os
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _default_data() -> Path | None:
    for candidate in (REPO_ROOT.parent / "shared" / "data", Path("/work/shared/data")):
        if candidate.is_dir():
            return candidate
    return None


if not os.environ.get("LNLAB_DATA") and _default_data() is not None:
    os.environ["LNLAB_DATA"] = str(_default_data())

if not os.environ.get("LNLAB_CACHE"):
    os.environ["LNLAB_CACHE"] = str(Path(tempfile.gettempdir()) / f"lnlab-test-cache-{getpass.getuser()}")
