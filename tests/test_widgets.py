"""lnlab.widgets driven headlessly: changing a control changes what the explorer shows, and a figure
changed in place shows what a new figure from lnlab.plots would."""

from __future__ import annotations

import dataclasses
import io
import operator
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from _synthetic import OODS, fake_run, logits
from tests_support import ci_pair

from lnlab import bound_plots, bound_widgets, plots, toy_widgets, widgets
from lnlab.explorer import PngRenderer
from lnlab.config import TrainConfig
from lnlab.losses import confidence_cap, lower_bound, tight_lower_bound
from lnlab.metrics import ood_metrics
from lnlab.scores import score


def _plotted_heights(explorer) -> list[np.ndarray]:
    """Vertices of the filled step histograms drawn on each panel (what the user sees)."""
    return [np.concatenate([path.vertices for c in ax.collections for path in c.get_paths()])
            for ax in explorer.figure.axes]


def assert_same_drawing(shown, fresh) -> None:
    """``shown`` (a figure changed in place) draws what ``fresh`` (built for the same values) draws."""
    assert len(shown.axes) == len(fresh.axes)
    for a, b in zip(shown.axes, fresh.axes):
        assert (a.get_title(), a.get_xlabel(), a.get_ylabel()) == (b.get_title(), b.get_xlabel(), b.get_ylabel())
        for text in ("title", "xaxis.label", "yaxis.label"):  # in the figure's fonts, not the rc of the change
            first, second = (operator.attrgetter(text)(ax) for ax in (a, b))
            assert first.get_fontproperties() == second.get_fontproperties(), text
        np.testing.assert_allclose(a.get_xlim(), b.get_xlim(), rtol=1e-9)
        np.testing.assert_allclose(a.get_ylim(), b.get_ylim(), rtol=1e-9)
        assert [(t.get_text(), t.get_fontproperties()) for t in a.texts] == [(t.get_text(), t.get_fontproperties())
                                                                            for t in b.texts]
        assert len(a.collections) == len(b.collections) and len(a.get_lines()) == len(b.get_lines())
        for c, d in zip(a.collections, b.collections):
            np.testing.assert_allclose(np.concatenate([p.vertices for p in c.get_paths()]),
                                       np.concatenate([p.vertices for p in d.get_paths()]), rtol=1e-9, atol=1e-12)
        for c, d in zip(a.get_lines(), b.get_lines()):
            np.testing.assert_allclose(np.asarray(c.get_xydata(), float), np.asarray(d.get_xydata(), float), rtol=1e-9)
    assert ([[(t.get_text(), t.get_fontproperties()) for t in leg.get_texts()] for leg in shown.legends]
            == [[(t.get_text(), t.get_fontproperties()) for t in leg.get_texts()] for leg in fresh.legends])
    assert shown.get_suptitle() == fresh.get_suptitle()


def _png_size(explorer) -> tuple[int, int]:
    from PIL import Image

    return Image.open(io.BytesIO(bytes(explorer.widget.children[-1].value))).size


def _fresh_size(fig) -> tuple[int, int]:
    """Size of the image of a new figure, laid out from scratch."""
    from PIL import Image

    return Image.open(io.BytesIO(PngRenderer()(fig))).size


@pytest.fixture()
def runs():
    return {"CE": logits("ce"), "LogitNorm τ=0.04": logits("logitnorm", seed=1)}


def test_score_explorer_follows_ood_choice(runs):
    explorer = widgets.score_explorer(runs)
    assert list(explorer.controls["ood"].options) == list(OODS)
    assert explorer.state["ood"] == "textures"
    assert "epoch" not in explorer.controls  # dicts of logits: no logits along training, no epoch slider
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


def test_score_explorer_changes_its_figure_in_place_as_plots_would_draw_it(runs):
    explorer = widgets.score_explorer(runs)
    figure = explorer.figure
    for name, value in [("ood", "mnist"), ("temperature", 10 ** 0.5), ("score", "energy"), ("score", "max_logit")]:
        explorer.controls[name].value = value
        assert explorer.figure is figure  # no new figure per change
        s = explorer.state
        fresh = plots.plot_msp_histograms(s["id_scores"], s["ood_scores"], ood_name=s["ood"], score_name=s["score"])
        assert_same_drawing(explorer.figure, fresh)
        if name == "score":
            assert _png_size(explorer) == _fresh_size(fresh)  # a new x label: laid out again


def test_an_unchanged_figure_is_not_drawn_again(runs):
    explorer = widgets.score_explorer(runs)
    png = explorer._png
    assert png(explorer.figure) is png(explorer.figure)  # nothing changed: the last PNG


def test_a_figure_of_another_shape_is_built_anew(runs, monkeypatch):
    explorer = widgets.score_explorer(runs)
    figure = explorer.figure
    monkeypatch.setattr(widgets, "_update_histograms", lambda *args: False)  # e.g. plots draws it differently
    explorer.controls["ood"].value = "mnist"
    assert explorer.figure is not figure
    assert "OOD: mnist" in [t.get_text() for t in explorer.figure.legends[0].get_texts()]


# --------------------------------------------------------------------------- the epoch slider


def snapshot_run(loss: str, seed: int, epochs: tuple[int, ...] = (1, 3, 5, 10)) -> SimpleNamespace:
    """A Run stand-in with logits along training: separation grows with the epoch, as in training."""
    final = logits(loss, seed=seed)
    labels = final["test"].argmax(1)  # the final logits are right: accuracy 100% at the end
    def noise(shape, epoch):
        return 0.3 * torch.randn(shape, generator=torch.Generator().manual_seed(epoch))

    stored = {e: {name: (values * e / epochs[-1] + noise(values.shape, e)).half() for name, values in final.items()}
              for e in epochs[:-1]}

    def snapshot(epoch: int, name: str) -> torch.Tensor:
        return final[name] if epoch == epochs[-1] else stored[epoch][name].float()

    config = TrainConfig(loss=loss, dataset="cifar10", model="fastnet", ood=OODS, epochs=epochs[-1])
    return SimpleNamespace(config=config, snapshot_epochs=list(epochs), snapshot=snapshot,
                           logits_for=final.__getitem__, logits=final, labels=labels)


def test_score_explorer_epoch_slider_shows_the_stored_logits_of_that_epoch():
    runs = {"CE": snapshot_run("ce", 0), "LogitNorm τ=0.04": snapshot_run("logitnorm", 1, epochs=(1, 2, 3, 5, 10))}
    explorer = widgets.score_explorer(runs)
    slider = explorer.controls["epoch"]
    assert list(slider.options) == [("1", 1), ("3", 3), ("5", 5), ("10", 10)]  # the epochs both runs store
    assert slider.value == 10 and explorer.state["accuracy"]["CE"] == 1.0
    final_metrics = explorer.state["metrics"]["CE"]
    figure = explorer.figure
    slider.value = 3
    assert "after epoch 3 of 10" in explorer.text and explorer.figure is figure
    for label, run in runs.items():
        expected = ood_metrics(score("msp", run.snapshot(3, "test")).numpy(),
                               score("msp", run.snapshot(3, "textures")).numpy())
        assert explorer.state["metrics"][label]["auroc"] == pytest.approx(expected["auroc"])
        line = next(line for line in explorer.text.splitlines() if line.strip().startswith(label))
        assert f"FPR95 {100 * expected['fpr95']:5.1f}%" in line and f"AUROC {100 * expected['auroc']:5.1f}%" in line
        accuracy = float((run.snapshot(3, "test").argmax(1) == run.labels).float().mean())
        assert f"test accuracy {100 * accuracy:5.1f}%" in line
    assert explorer.state["metrics"]["CE"] != final_metrics
    s = explorer.state
    titles = {label: f"{label}, after epoch 3 of 10" for label in runs}  # the figure says it is not the end
    assert [ax.get_title() for ax in explorer.figure.axes] == list(titles.values())
    fresh = plots.plot_msp_histograms({titles[k]: v for k, v in s["id_scores"].items()},
                                      {titles[k]: v for k, v in s["ood_scores"].items()}, ood_name="textures",
                                      subtitle=plots.recipe_line(runs))
    assert_same_drawing(explorer.figure, fresh)
    explorer.controls["score"].value = "energy"  # the other controls stay at that epoch
    np.testing.assert_allclose(explorer.state["id_scores"]["CE"],
                               score("energy", runs["CE"].snapshot(3, "test")).numpy(), rtol=1e-6)


def test_score_explorer_without_earlier_logits_has_no_epoch_slider():
    runs = {"CE": snapshot_run("ce", 0, epochs=(10,)), "LN": snapshot_run("logitnorm", 1, epochs=(10,))}
    explorer = widgets.score_explorer(runs)
    assert "epoch" not in explorer.controls and "epoch" not in explorer.text


def test_score_explorer_epoch_slider_on_ci_runs(tmp_path_factory):
    pair = ci_pair(tmp_path_factory)
    runs = {"CE": pair["ce"], "LogitNorm τ=0.04": pair["logitnorm"]}
    explorer = widgets.score_explorer(runs)
    epochs = widgets.common_snapshot_epochs(runs)
    assert len(epochs) > 1 and explorer.controls["epoch"].value == epochs[-1]
    epoch = epochs[1]
    explorer.controls["epoch"].value = epoch
    for label, run in runs.items():
        expected = ood_metrics(score("msp", run.snapshot(epoch, "test")).numpy(),
                               score("msp", run.snapshot(epoch, explorer.state["ood"])).numpy())
        line = next(line for line in explorer.text.splitlines() if line.strip().startswith(label))
        assert f"FPR95 {100 * expected['fpr95']:5.1f}%" in line and f"AUROC {100 * expected['auroc']:5.1f}%" in line


# --------------------------------------------------------------------------- bound, τ and toy explorers


def test_bound_explorer_prints_the_bound_for_the_chosen_tau_and_k():
    explorer = bound_widgets.bound_explorer(tau=0.04, k=10)
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


def test_bound_explorer_moves_its_star_in_place():
    points = [{"tau": 0.04, "num_classes": 10, "loss": 0.05}]  # a run at the slider's τ: its segment stays
    explorer = bound_widgets.bound_explorer(tau=0.04, k=10, points=points)
    figure = explorer.figure
    explorer.controls["tau"].value = 0.2
    explorer.controls["k"].value = 57
    assert explorer.figure is figure
    assert_same_drawing(figure, bound_plots.plot_lower_bound(points=points, marker=(explorer.state["tau"], 57)))


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


def _seed_zero(run):
    """A fake run whose data come from another seed but whose config says seed 0 (one recipe line for all)."""
    run.config = dataclasses.replace(run.config, seed=0)
    return run


def test_tau_explorer_changes_each_views_figure_in_place():
    runs = plots.label_runs([fake_run("ce"), _seed_zero(fake_run("logitnorm", tau=0.01, seed=1)),
                             _seed_zero(fake_run("logitnorm", tau=0.1, seed=2))])
    explorer = widgets.tau_explorer(runs)
    norm_figure = explorer.figure
    explorer.controls["tau"].value = 0.1
    assert explorer.figure is norm_figure
    assert_same_drawing(norm_figure, plots.plot_runs_norm_vs_epoch({label: runs[label] for label in
                                                                    ("CE", "LogitNorm τ=0.1")}))
    explorer.controls["view"].value = "msp"
    msp_figure = explorer.figure
    explorer.controls["tau"].value = 0.01
    explorer.controls["ood"].value = "mnist"
    assert explorer.figure is msp_figure
    shown = {"CE": runs["CE"], "LogitNorm τ=0.01": runs["LogitNorm τ=0.01"]}
    assert_same_drawing(msp_figure, plots.plot_runs_histograms(shown, "mnist", "msp"))
    auroc = ood_metrics(*[scores["LogitNorm τ=0.01"] for scores in plots.score_sets(shown, "mnist")])["auroc"]
    assert "mnist" in explorer.text and f"AUROC {100 * auroc:5.1f}%" in explorer.text
    explorer.controls["view"].value = "norm"  # back: the norm figure, now for τ = 0.01
    assert explorer.figure is norm_figure
    assert_same_drawing(norm_figure, plots.plot_runs_norm_vs_epoch(shown))


def test_tau_explorer_needs_a_logitnorm_run():
    with pytest.raises(ValueError, match="logitnorm"):
        widgets.tau_explorer([fake_run("ce")])


def test_toy_explorer_trains_in_the_background_and_keeps_each_tau():
    explorer = toy_widgets.toy_explorer(tau=0.04, steps=20, n=150, resolution=40, background=True)
    first = explorer.state["run"]
    assert first.tau == 0.04 and explorer.state["pending"] is None
    image = bytes(explorer.widget.children[-1].value)
    explorer.controls["tau"].value = 0.1
    if explorer.state["pending"] is not None:  # the answer came before the new map: the old one is still shown
        assert "retraining the toy at τ = 0.1" in explorer.text and explorer.state["run"] is first
    assert explorer.background.idle(timeout=120)
    assert explorer.state["run"].tau == pytest.approx(0.1) and explorer.state["pending"] is None
    assert "LogitNorm τ=0.1" in explorer.text and bytes(explorer.widget.children[-1].value) != image
    explorer.controls["tau"].value = 0.04  # trained before: shown at once
    assert explorer.state["run"] is first and bytes(explorer.widget.children[-1].value) == image


def test_toy_explorer_without_background_trains_before_returning():
    explorer = toy_widgets.toy_explorer(tau=0.04, steps=20, n=150, resolution=40, background=False)
    explorer.controls["tau"].value = 0.2
    assert explorer.state["run"].tau == pytest.approx(0.2) and "LogitNorm τ=0.2" in explorer.text


def test_explorer_widget_box_contains_the_controls(runs):
    explorer = widgets.score_explorer(runs)
    controls_box = explorer.widget.children[1]
    assert set(controls_box.children) == set(explorer.controls.values())
