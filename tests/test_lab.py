"""What a new user of JupyterLab gets from the install: the kernel, quiet settings, `make lab`, the roots.

The browser itself is driven by tests/test_browser.py; these checks run in seconds.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from lnlab import bound_widgets, paths, suite, widgets
from lnlab.explorer import layout_signature
from lnlab.formatting import format_number, format_probability, format_scientific

REPO = Path(__file__).resolve().parent.parent


def test_pip_installed_the_lnlab_kernel_for_this_python():
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(suite.KERNEL_NAME)
    assert suite.KERNEL_NAME == "lnlab" and spec.display_name == "Python 3 (lnlab)"
    assert Path(spec.resource_dir).is_relative_to(sys.prefix), "installed into this environment's prefix"
    assert spec.argv[0] in ("python", sys.executable)  # jupyter_client runs "python" as its own interpreter


def test_jupyterlab_settings_silence_the_news_pop_up():
    overrides = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    assert json.loads(overrides.read_text()) == json.loads((REPO / "jupyter/lab/settings/overrides.json").read_text())
    assert json.loads(overrides.read_text())["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"


@pytest.mark.parametrize("path", suite.notebook_paths(), ids=lambda p: p.stem)
def test_notebook_names_the_lnlab_kernel(path):
    """JupyterLab opens it without a kernel dialog, in the environment that has lnlab."""
    spec = nbformat.read(path, as_version=4).metadata.get("kernelspec", {})
    assert spec.get("name") == suite.KERNEL_NAME, f"{path.name}: kernelspec {spec}; make clean-notebooks sets it"


def test_make_lab_prints_the_url_and_the_roots_of_make_figures(tmp_path):
    env = {**os.environ, "LNLAB_RUNS": str(tmp_path / "runs"), "LAB_BROWSER": "0", "LAB_PORT": "18890"}
    answer = subprocess.run(["bash", str(REPO / "scripts/lab.sh"), "--version"], env=env, capture_output=True,
                            text=True, timeout=120, cwd=REPO)
    assert answer.returncode == 0, answer.stderr
    assert f"runs      {tmp_path / 'runs'}" in answer.stdout
    assert "/lab/tree/" in answer.stdout and "?token=" in answer.stdout
    assert answer.stdout.strip().splitlines()[-1].startswith("4.")  # `jupyter lab --version`: JupyterLab 4


def test_an_installed_copy_writes_to_the_user_cache_and_working_directory(monkeypatch, tmp_path):
    for name in ("LNLAB_DATA", "LNLAB_RUNS", "LNLAB_FIGURES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    assert paths.CHECKOUT == REPO  # this test session runs from the checkout
    assert paths.runs_root() == REPO / "runs" and paths.figures_root() == REPO / "figures"
    monkeypatch.setattr(paths, "CHECKOUT", None)  # as after `pip install .`
    assert paths.runs_root() == tmp_path / "cache" / "lnlab" / "runs"
    assert paths.data_root() == tmp_path / "cache" / "lnlab" / "data"
    assert paths.figures_root() == tmp_path / "figures"
    assert paths.notebooks_root() == tmp_path / "notebooks"


@pytest.mark.parametrize("value, complement, text", [
    (0.7312, None, "0.731"),
    (0.999999998, None, "1 − 2e-9"),
    (1.0, -math.expm1(-2.1e-87), "1 − 2.1e-87"),  # float64 rounds the cap to 1; the complement keeps the digits
    (0.995, None, "0.995"),
    (3.4e-12, None, "3.4e-12"),
    (1.0, None, "1"),
    (0.0, None, "0"),
])
def test_probabilities_near_one_or_zero_say_how_near(value, complement, text):
    assert format_probability(value, complement) == text


def test_numbers_keep_short_exponents():
    assert format_number(1.0312e-11) == "1.031e-11" and format_number(0.004484) == "0.004484"
    assert format_scientific(2.1e-9) == "2.1e-9" and format_scientific(5e-4, 1) == "5e-4"


def test_bound_explorer_prints_how_far_below_one_the_cap_is():
    explorer = bound_widgets.bound_explorer(tau=0.04, k=10)
    cap_line = next(line for line in explorer.text.splitlines() if "confidence cap" in line)
    assert cap_line.rstrip().endswith(format_probability(1.0, explorer.state["confidence_cap_complement"]))
    assert "1 − " in cap_line and "e-" in cap_line  # not "= 1"
    assert explorer.state["confidence_cap_complement"] == pytest.approx(1 - explorer.state["confidence_cap"], abs=1e-15)


def test_sliders_send_their_value_on_release_not_while_dragged():
    explorer = bound_widgets.bound_explorer()
    sliders = [c for c in explorer.controls.values() if "continuous_update" in c.trait_names()]
    assert sliders and not any(c.continuous_update for c in sliders)
    explorer.controls["k"].value = 100
    assert 0 < explorer.redraw_seconds < 30


def _tight_png(fig, dpi=110):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return Image.open(buffer)


def test_explorer_images_show_what_a_tight_savefig_shows_in_one_draw():
    """The explorer's PNG has the size of a tight savefig, in one draw; the next τ reuses the layout (same
    decorations) instead of measuring it again."""
    import io

    import numpy as np
    from PIL import Image

    from lnlab import bound_plots

    explorer = bound_widgets.bound_explorer(tau=0.04, k=10)
    explorer.controls["tau"].value = 0.2
    assert explorer._png._signature == layout_signature(bound_plots.plot_lower_bound(marker=(0.3, 10)))
    shown = Image.open(io.BytesIO(bytes(explorer.widget.children[-1].value)))
    reference = _tight_png(bound_plots.plot_lower_bound(marker=(explorer.state["tau"], 10)))
    assert shown.size == reference.size
    # the padding beyond the canvas is the figure's face colour (white), as savefig's, not transparent or black
    shown = np.asarray(shown.convert("RGBA"))
    for margin in (shown[:3], shown[-3:], shown[:, :3], shown[:, -3:]):
        assert (margin == 255).all()


def test_explorer_images_hold_a_label_that_sticks_out_of_the_canvas():
    """Content beyond the canvas (a long axis label) is drawn into the larger box, as savefig does."""
    import io

    from PIL import Image

    from lnlab.explorer import PngRenderer
    from lnlab.plots import new_figure

    def long_label_figure():  # one each: savefig changes the figure it draws
        fig, axes = new_figure(1, 1, width=3.0, height=1.2)
        axes[0, 0].plot([0, 1], [0, 1])
        axes[0, 0].set_ylabel("a y label far longer than the axes are high, so it reaches past the canvas")
        return fig

    reference = _tight_png(long_label_figure())
    assert reference.size[1] > 1.2 * 110 + 22  # it does stick out: taller than the canvas and both pads
    assert Image.open(io.BytesIO(PngRenderer()(long_label_figure()))).size == reference.size


def test_tau_explorer_with_one_cached_tau_says_how_to_get_more():
    from _synthetic import fake_run

    explorer = widgets.tau_explorer([fake_run("ce"), fake_run("logitnorm", tau=0.04, seed=1)])
    assert explorer.controls["tau"].disabled and "add values to `taus`" in explorer.text
    explorer.controls["view"].value = "msp"  # the other controls still redraw, and the text follows
    assert "MSP, ID test vs OOD" in explorer.text
