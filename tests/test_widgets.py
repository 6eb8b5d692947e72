"""lnlab.widgets driven headlessly: changing a control changes what the explorer shows."""

from __future__ import annotations

import numpy as np
import pytest
from _synthetic import OODS, fake_run, logits

from lnlab import widgets
from lnlab.losses import confidence_cap, lower_bound, tight_lower_bound
from lnlab.scores import score


def _plotted_heights(explorer) -> list[np.ndarray]:
    """Vertices of the filled step histograms drawn on each panel (what the user sees)."""
    return [np.concatenate([path.vertices for c in ax.collections for path in c.get_paths()])
            for ax in explorer.figure.axes]


@pytest.fixture()
def runs():
    return {"CE": logits("ce"), "LogitNorm τ=0.04": logits("logitnorm", seed=1)}


def test_score_explorer_follows_ood_choice(runs):
    explorer = widgets.score_explorer(runs)
    assert list(explorer.controls["ood"].options) == list(OODS)
    assert explorer.state["ood"] == "textures"
    before = _plotted_heights(explorer)
    explorer.controls["ood"].value = "mnist"
    assert explorer.state["ood"] == "mnist" and "OOD mnist" in explorer.text
    legend = [t.get_text() for t in explorer.figure.legends[0].get_texts()]
    assert "OOD: mnist" in legend
    np.testing.assert_allclose(explorer.state["ood_scores"]["CE"], score("msp", runs["CE"]["mnist"]).numpy(), rtol=1e-6)
    assert any(b.shape != a.shape or not np.allclose(b, a) for a, b in zip(before, _plotted_heights(explorer)))


def test_score_explorer_score_and_temperature_redraw(runs):
    explorer = widgets.score_explorer(runs)
    msp_auroc = explorer.state["metrics"]["CE"]["auroc"]
    explorer.controls["temperature"].value = 100.0
    assert explorer.state["effective_temperature"] == pytest.approx(100.0)
    np.testing.assert_allclose(explorer.state["id_scores"]["CE"],
                               score("msp", runs["CE"]["test"], temperature=100.0).numpy(), rtol=1e-5)
    assert "T=100" in explorer.text
    explorer.controls["score"].value = "max_logit"
    assert explorer.controls["temperature"].disabled and explorer.state["effective_temperature"] is None
    np.testing.assert_allclose(explorer.state["id_scores"]["CE"], runs["CE"]["test"].amax(dim=1).numpy())
    assert "max logit" in explorer.figure.axes[0].get_xlabel()
    explorer.controls["score"].value = "energy"
    assert not explorer.controls["temperature"].disabled
    assert explorer.state["metrics"]["CE"]["auroc"] != msp_auroc


def test_bound_explorer_prints_the_bound_for_the_chosen_tau_and_k():
    explorer = widgets.bound_explorer(tau=0.04, k=10)
    first, first_png = explorer.text, bytes(explorer.widget.children[-1].value)
    assert first_png.startswith(b"\x89PNG")  # the figure is shown as an Image widget
    explorer.controls["tau"].value = 0.2
    explorer.controls["k"].value = 100
    tau = explorer.controls["tau"].value
    assert explorer.state["lower_bound"] == pytest.approx(float(lower_bound(tau, 100)))
    assert explorer.state["tight_lower_bound"] == pytest.approx(float(tight_lower_bound(tau, 100)))
    assert explorer.state["confidence_cap"] == pytest.approx(float(confidence_cap(tau, 100)))
    assert explorer.text != first and bytes(explorer.widget.children[-1].value) != first_png
    assert f"{float(lower_bound(tau, 100)):.4g}" in explorer.text
    stars = [line for ax in explorer.figure.axes for line in ax.get_lines() if line.get_marker() == "*"]
    assert stars and all(star.get_xdata()[0] == pytest.approx(tau) for star in stars)


def test_tau_explorer_switches_run_and_view():
    runs = [fake_run("ce"), fake_run("logitnorm", tau=0.01, seed=1), fake_run("logitnorm", tau=0.1, seed=2)]
    explorer = widgets.tau_explorer(runs)
    assert explorer.state["shown"] == ["CE", "LogitNorm τ=0.01"]
    first_line = explorer.figure.axes[0].get_lines()[1].get_ydata().copy()
    explorer.controls["tau"].value = 0.1
    assert explorer.state["label"] == "LogitNorm τ=0.1" and "LogitNorm τ=0.1" in explorer.text
    assert not np.allclose(explorer.figure.axes[0].get_lines()[1].get_ydata(), first_line)
    explorer.controls["view"].value = "msp"
    explorer.controls["ood"].value = "mnist"
    assert [ax.get_title() for ax in explorer.figure.axes] == ["CE", "LogitNorm τ=0.1"]
    assert "OOD: mnist" in [t.get_text() for t in explorer.figure.legends[0].get_texts()]


def test_tau_explorer_needs_a_logitnorm_run():
    with pytest.raises(ValueError, match="logitnorm"):
        widgets.tau_explorer([fake_run("ce")])


def test_explorer_widget_box_contains_the_controls(runs):
    explorer = widgets.score_explorer(runs)
    controls_box = explorer.widget.children[1]
    assert set(controls_box.children) == set(explorer.controls.values())
