"""What a run records per epoch does not depend on who asked first (issue #19).

The scenario of the issue on the real ``ci`` profile in a fresh cache: ``lnlab eval`` asks first
about the user's own OOD set only (a pack given as a path) and so trains the LogitNorm run; then
notebook 01 runs on the same cache and draws the default OOD sets (their per-epoch history was
recorded anyway), and a run with a narrow history (cached by an older lnlab) is drawn with the sets
it has and one warning line instead of an error.
"""

from __future__ import annotations

import json
import warnings

import nbformat
import numpy as np
import pytest

from lnlab.cli import main
from lnlab.profiles import make_config
from lnlab.runs import load_run
from lnlab.splits import TRACKED_OOD, VALIDATION_OOD_SETS
from lnlab.suite import run_suite
from tests_support import requires_cifar10

pytestmark = [requires_cifar10, pytest.mark.slow]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    base = tmp_path_factory.mktemp("issue19")
    rng = np.random.default_rng(0)
    own = base / "my_own_set.npz"
    np.savez(own, x=rng.integers(0, 256, (60, 32, 32, 3), dtype=np.uint8))
    cache = base / "runs"
    rc = main(["eval", "--profile", "ci", "--loss", "logitnorm", "--tau", "0.04", "--scores", "msp",
               "--ood", str(own), "--runs", str(cache), "--no-progress"])
    assert rc == 0
    return base, own, cache


def test_the_first_caller_does_not_narrow_the_history(scenario):
    _, own, cache = scenario
    config = make_config("ci", loss="logitnorm", tau=0.04)
    run = load_run(cache / config.key())
    assert run.history_sets[:2] == ["train", "test"]
    assert set(TRACKED_OOD) <= set(run.history_sets)  # the default family, whoever asked first
    assert str(own) in run.history_sets and "val" in run.history_sets and set(VALIDATION_OOD_SETS) <= set(run.history_sets)
    meta = json.loads((cache / config.key() / "config.json").read_text())
    assert meta["history_sets"] == run.history_sets  # the stored record says which sets its history covers
    assert set(TRACKED_OOD) <= set(meta["config"]["ood"])
    for row in run.history:
        assert all(np.isfinite(row[f"norm_{name}_mean"]) for name in run.history_sets)


def test_notebook_01_then_draws_the_default_sets(scenario):
    base, _, cache = scenario
    out = base / "figures"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the parent process: nothing warned
        run_suite(profile="ci", notebooks=["01"], output=out, runs_root=cache, device="cpu", pretrain=False)
    executed = nbformat.read(out / "01_logit_norm_growth.ipynb", as_version=4)
    text = "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for c in executed.cells
                   for o in c.get("outputs", []))
    assert "Error" not in text and "Traceback" not in text
    # The default family is recorded by both runs: no warning names it. (CE was trained by the suite, not
    # asked about the user's own set, so the one warning allowed is that CE has no history for that set.)
    for line in (w for w in text.splitlines() if "no per-epoch history" in w):
        assert "my_own_set" in line and not any(f"'{name}'" in line for name in TRACKED_OOD), line
    assert (out / "01_logit_norm_growth_norm_vs_epoch.png").stat().st_size > 0
    code = "\n".join(c.source for c in executed.cells if c.cell_type == "code")
    assert "plot_runs_norm_vs_epoch" in code
    from lnlab import plots
    from lnlab.suite import comparison_runs, main_pair

    fig = plots.plot_runs_norm_vs_epoch(main_pair(comparison_runs("ci", runs_root=cache, progress=False)))
    shown = " ".join(ax.get_title() + " " + " ".join(t.get_text() for t in (ax.get_legend().get_texts()
                                                                             if ax.get_legend() else []))
                     for ax in fig.axes) + " ".join(t.get_text() for leg in fig.legends for t in leg.get_texts())
    for name in ("textures", "mnist", "tinyimagenet"):
        assert name in shown.lower().replace(" ", ""), f"{name} missing from notebook 01's figure: {shown}"


def test_a_run_with_a_narrow_history_is_drawn_with_one_warning(scenario, tmp_path):
    """A run cached before the fixed family (only train, test and the user's set per epoch) keeps working."""
    _, own, cache = scenario
    from lnlab import plots

    run = load_run(cache / make_config("ci", loss="logitnorm", tau=0.04).key())
    keep = {"train", "test", str(own)}
    run.history = [{k: v for k, v in row.items() if not k.startswith("norm_") or
                    k[len("norm_"):].rsplit("_", 1)[0] in keep} for row in run.history]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = plots.plot_runs_norm_vs_epoch({"LogitNorm τ=0.04": run}, splits=["train", "test", "textures", "mnist"])
    lines = [str(w.message) for w in caught if "per-epoch history" in str(w.message)]
    assert len(lines) == 1 and "textures" in lines[0] and "mnist" in lines[0] and "\n" not in lines[0]
    assert "lnlab train --force" in lines[0]
    assert fig.axes
