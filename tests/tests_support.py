"""Shared helpers of the training tests (not a test module)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from lnlab.data import available_datasets

# A tiny config (seconds on a CPU) for cache / resume / divergence tests; use with make_config("ci", **TINY).
TINY = {"epochs": 3, "subset_per_class": 16, "test_subset_per_class": 8, "norm_subset": 80, "ood": ("gaussian",),
        "ood_limit": 64, "model_width": 8, "batch_size": 32, "device": "cpu"}


CHROMIUM = os.environ.get("LNLAB_CHROMIUM", "/usr/bin/chromium")


def chromium() -> Iterator:
    """A headless Chromium (Playwright) for a module-scoped fixture; fails, saying what to install, when
    Chromium or Playwright is missing: the browser tests are never skipped."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: install it with `apt-get install -y chromium` "
                    "(or set LNLAB_CHROMIUM to a Chromium binary)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        pytest.fail(f"Playwright is missing ({error}): pip install -e '.[dev]' (make env installs it)")
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        except Exception as error:  # the message says what the browser printed
            pytest.fail(f"Chromium at {CHROMIUM} did not start: {error}")
        yield browser
        browser.close()


def _cifar10_present() -> bool:
    return any(row["name"] == "cifar10" and row["present"] for row in available_datasets())


requires_cifar10 = pytest.mark.skipif(not _cifar10_present(), reason="CIFAR-10 not available (set LNLAB_DATA)")


def ci_root(tmp_path_factory) -> str:
    """``$LNLAB_RUNS`` if set (CI shares the runs with the notebooks), else one folder per test session."""
    return os.environ.get("LNLAB_RUNS") or str(tmp_path_factory.getbasetemp() / "ci_runs")


def ci_pair(tmp_path_factory) -> dict:
    """The ci profile's CE and LogitNorm (tau 0.04) runs, trained once per session and root."""
    if not _cifar10_present():
        pytest.skip("CIFAR-10 not available (set LNLAB_DATA)")
    from lnlab.runs import get_pair

    return get_pair("ci", tau=0.04, root=ci_root(tmp_path_factory), progress=False)
