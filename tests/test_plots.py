"""lnlab.plots: each figure shows exactly the data it was given, with labelled axes; save_figure writes PDF+PNG."""

from __future__ import annotations

import numpy as np
import pytest
from _synthetic import OODS, SPLITS, fake_run, history, logits
from matplotlib.figure import Figure

from lnlab import plots
from lnlab.losses import confidence_cap, lower_bound, tight_lower_bound
from lnlab.metrics import ood_metrics
from lnlab.scores import score


def _visible_axes(fig: Figure) -> list:
    return [ax for ax in fig.axes if ax.get_visible()]


def _assert_labelled(fig: Figure) -> None:
    for ax in _visible_axes(fig):
        assert ax.get_xlabel(), f"axes {ax.get_title()!r} has no x label"
    assert any(ax.get_ylabel() for ax in _visible_axes(fig))
    assert fig.legends or any(ax.get_legend() for ax in fig.axes), "figure has no legend"


def test_norm_vs_epoch_plots_the_given_mean_norms_per_split_and_run():
    histories = {"CE": history("ce"), "LogitNorm τ=0.04": history("logitnorm", seed=1)}
    fig = plots.plot_norm_vs_epoch(histories)
    axes = _visible_axes(fig)
    assert isinstance(fig, Figure) and len(axes) == len(SPLITS)
    _assert_labelled(fig)
    for ax, split in zip(axes, SPLITS):
        assert ax.get_yscale() == "log"
        lines = ax.get_lines()
        assert len(lines) == len(histories)
        for line, (label, frame) in zip(lines, histories.items()):
            assert line.get_label() == label
            np.testing.assert_allclose(line.get_xdata(), frame.index.to_numpy())
            np.testing.assert_allclose(line.get_ydata(), frame[f"norm_{split}_mean"].to_numpy())
        assert len(ax.collections) == len(histories)  # one 10-90% band per run


def test_norm_vs_epoch_accepts_records_and_split_subset_and_linear_axis():
    records = history("ce").reset_index().to_dict("records")
    fig = plots.plot_norm_vs_epoch({"CE": records}, splits=("test",), log_y=False, band=False)
    (ax,) = _visible_axes(fig)
    assert ax.get_yscale() == "linear" and not ax.collections
    assert ax.get_title() == "ID test"


def test_norm_vs_epoch_rejects_unknown_split():
    with pytest.raises(ValueError, match="norm_<split>_mean"):
        plots.plot_norm_vs_epoch({"CE": history("ce")}, splits=("svhn",))


def test_msp_histograms_have_one_panel_per_run_with_metrics_text():
    runs = {"CE": logits("ce"), "LogitNorm": logits("logitnorm", seed=1)}
    id_scores, ood_scores = plots.score_sets(runs, "textures")
    np.testing.assert_allclose(id_scores["CE"], score("msp", runs["CE"]["test"]).numpy(), rtol=1e-6)
    fig = plots.plot_msp_histograms(id_scores, ood_scores, ood_name="textures")
    axes = _visible_axes(fig)
    assert [ax.get_title() for ax in axes] == ["CE", "LogitNorm"]
    _assert_labelled(fig)
    for ax, label in zip(axes, runs):
        expected = ood_metrics(id_scores[label], ood_scores[label])
        text = " ".join(t.get_text() for t in ax.texts)
        assert f"FPR95 {100 * expected['fpr95']:.1f}%" in text
        assert f"AUROC {100 * expected['auroc']:.1f}%" in text
        assert ax.get_xlim()[0] <= 0.0 and ax.get_xlim()[1] >= 1.0  # MSP is a probability
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["ID: test", "OOD: textures"]


def test_score_sets_temperature_changes_energy_scores():
    runs = {"CE": logits("ce")}
    cold, _ = plots.score_sets(runs, "mnist", "energy", temperature=1.0)
    hot, _ = plots.score_sets(runs, "mnist", "energy", temperature=10.0)
    assert not np.allclose(cold["CE"], hot["CE"])
    with pytest.raises(ValueError, match="svhn"):
        plots.score_sets(runs, "svhn")


def test_lower_bound_figure_plots_both_bounds_and_cap_per_k():
    taus = np.logspace(-1.5, 0, 50)
    ks = (10, 100)
    points = [{"tau": 0.1, "num_classes": 10, "loss": 0.3, "label": "run"}]
    fig = plots.plot_lower_bound(taus, ks=ks, points=points, marker=(0.2, 100), y_floor=1e-30)
    ax_bound, ax_cap = _visible_axes(fig)
    _assert_labelled(fig)
    assert ax_bound.get_xscale() == ax_bound.get_yscale() == "log" and ax_cap.get_xscale() == "log"
    curves = [line for line in ax_bound.get_lines() if len(line.get_xdata()) == len(taus)]
    assert len(curves) == 2 * len(ks)
    for i, k in enumerate(ks):
        tight, loose = curves[2 * i], curves[2 * i + 1]
        assert tight.get_linestyle() == "-" and loose.get_linestyle() == "--"
        np.testing.assert_allclose(tight.get_ydata(), tight_lower_bound(taus, k))
        np.testing.assert_allclose(loose.get_ydata(), lower_bound(taus, k))
    caps = [line for line in ax_cap.get_lines() if len(line.get_xdata()) == len(taus)]
    np.testing.assert_allclose(caps[0].get_ydata(), confidence_cap(taus, 10, tight=True))
    run_points = [line for line in ax_bound.get_lines() if line.get_marker() == "o"]
    assert [(p.get_xdata()[0], p.get_ydata()[0]) for p in run_points] == [(0.1, 0.3)]
    stars = [line for line in ax_cap.get_lines() if line.get_marker() == "*"]
    assert stars[0].get_ydata()[0] == pytest.approx(float(confidence_cap(0.2, 100)))


def test_lower_bound_rejects_points_without_loss():
    with pytest.raises(ValueError, match="loss"):
        plots.plot_lower_bound(points=[{"tau": 0.1, "num_classes": 10}])


def test_save_figure_writes_pdf_and_png(tmp_path):
    fig = plots.plot_lower_bound(ks=(10,))
    paths = plots.save_figure(fig, "03_lower_bound_test", tmp_path)
    assert [p.name for p in paths] == ["03_lower_bound_test.pdf", "03_lower_bound_test.png"]
    assert paths[0].read_bytes().startswith(b"%PDF")
    assert paths[1].read_bytes().startswith(b"\x89PNG")
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]
    with pytest.raises(ValueError, match="file stem"):
        plots.save_figure(fig, "a/b", tmp_path)


def test_run_conveniences_label_and_order_runs():
    runs = [fake_run("logitnorm", tau=0.1), fake_run("ce"), fake_run("logitnorm", tau=0.01)]
    labelled = plots.label_runs(runs)
    assert list(labelled) == ["CE", "LogitNorm τ=0.01", "LogitNorm τ=0.1"]
    fig = plots.plot_runs_norm_vs_epoch(runs, splits=("train",))
    assert len(_visible_axes(fig)[0].get_lines()) == 3


def test_norm_figure_with_several_seeds_draws_the_seed_mean_and_their_range():
    from lnlab.runs import Seeds

    seeds = Seeds([fake_run("ce", seed=s) for s in range(3)])
    fig = plots.plot_runs_norm_vs_epoch({"CE": seeds}, splits=("train",))
    (ax,) = _visible_axes(fig)
    means = np.stack([r.history_frame()["norm_train_mean"].to_numpy() for r in seeds])
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), means.mean(0))
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(means.min()) and band.max() == pytest.approx(means.max())
    assert "range over 3 seeds" in [t.get_text() for t in fig.legends[0].get_texts()]
