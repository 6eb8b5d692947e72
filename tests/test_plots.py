"""lnlab.plots: each figure shows exactly the data it was given, with labelled axes; save_figure writes PDF+PNG."""

from __future__ import annotations

import numpy as np
import pytest
from _synthetic import OODS, SPLITS, fake_run, history, logits
from matplotlib.figure import Figure

from lnlab import bound_plots, plots, snapshot_plots
from lnlab.losses import confidence_cap, lower_bound, tight_lower_bound
from lnlab.metrics import ood_metrics
from lnlab.scores import score
from sklearn.metrics import roc_auc_score


def _run(loss: str, seed: int = 0, key: str = "abc", history_sets=SPLITS, epochs: int = 6, **config):
    """A fake Run with a run key, a history of ``history_sets`` and logits at snapshot epochs 1, 3, 6.

    The snapshot logits change with the epoch: the ID logits' class peak grows, so MSP rises.
    """
    import torch
    from lnlab.profiles import make_config

    run = fake_run(loss, seed=seed, epochs=epochs)
    frame = history(loss, epochs=epochs, splits=tuple(history_sets), seed=seed)
    run.history_frame = lambda: frame
    run.history = frame.reset_index().to_dict("records")
    run.key = key
    if config:
        run.config = make_config(config.pop("profile"), loss=loss, seed=seed, **config)
    run.snapshot_epochs = [1, 3, epochs]

    def snapshot(epoch, name):
        if name not in run.logits:
            raise ValueError(f"not stored: {name}")
        base = logits(loss, seed=seed)[name]
        return base * (0.5 + epoch / epochs) + (0.1 * epoch * torch.ones_like(base) if name != "test" else 0)

    run.snapshot = snapshot
    return run


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


def test_norm_vs_epoch_rejects_a_split_no_history_has():
    with pytest.raises(ValueError, match="norm_<split>_mean"):
        plots.plot_norm_vs_epoch({"CE": history("ce")}, splits=("svhn",))


def test_norm_vs_epoch_draws_the_sets_a_history_has_and_warns_once_about_the_rest():
    histories = {"CE": history("ce"), "LogitNorm τ=0.04": history("logitnorm", splits=("train", "test", "textures"))}
    with pytest.warns(UserWarning) as caught:
        fig = plots.plot_norm_vs_epoch(histories)  # default: every set of any history
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "\n" not in message and "LogitNorm τ=0.04 has no per-epoch history for ['mnist']" in message
    assert "recorded while training" in message and "Run.logits_for" in message
    axes = _visible_axes(fig)
    assert [ax.get_title() for ax in axes] == ["train (un-augmented subset)", "ID test", "OOD: textures", "OOD: mnist"]
    assert [len(ax.get_lines()) for ax in axes] == [2, 2, 2, 1]
    assert axes[-1].get_lines()[0].get_label() == "CE"
    assert "no history: LogitNorm τ=0.04" in [t.get_text() for t in axes[-1].texts]
    with pytest.warns(UserWarning, match=r"CE has no per-epoch history for \['svhn'\]"):
        fig = plots.plot_norm_vs_epoch({"CE": history("ce")}, splits=("test", "svhn"))
    assert len(_visible_axes(fig)) == 1


def test_norm_figures_name_the_run_and_keep_validation_sets_out_by_default():
    sets = ("train", "test", "val", "gaussian_val", "textures", "val_jigsaw")
    old = _run("ce", key="0ld0ld0ld0ld0ld0", history_sets=("train", "test"))
    new = _run("logitnorm", key="feedfeedfeedfeed", history_sets=sets)
    with pytest.warns(UserWarning) as caught:
        fig = plots.plot_runs_norm_vs_epoch({"CE": old, "LogitNorm τ=0.04": new})
    assert len(caught) == 1
    assert "CE (run 0ld0ld0ld0ld0ld0) has no per-epoch history for ['textures']" in str(caught[0].message)
    assert [ax.get_title() for ax in _visible_axes(fig)] == ["train (un-augmented subset)", "ID test", "OOD: textures"]
    fig = plots.plot_runs_norm_vs_epoch({"LogitNorm τ=0.04": new}, splits=("val", "gaussian_val"))  # on request
    assert len(_visible_axes(fig)) == 2
    reordered = _run("ce", history_sets=("train", "test", "mnist", "textures"))
    reordered.history_sets = ["train", "test", "textures", "mnist"]  # the order training tracked the sets in wins
    fig = plots.plot_runs_norm_vs_epoch({"CE": reordered})
    assert [ax.get_title() for ax in _visible_axes(fig)][2:] == ["OOD: textures", "OOD: mnist"]
    from lnlab.runs import Seeds

    with pytest.warns(UserWarning, match=r"CE seed 1 \(run k1\) has no per-epoch history for \['textures'\]"):
        plots.plot_runs_norm_vs_epoch({"CE": Seeds([_run("ce", key="k0", history_sets=sets),
                                                    _run("ce", seed=1, key="k1", history_sets=("train", "test"))])})


def test_norm_table_leaves_out_missing_sets_with_one_warning():
    histories = {"CE": history("ce"), "LogitNorm τ=0.04": history("logitnorm", splits=("train", "test"))}
    with pytest.warns(UserWarning) as caught:
        table = plots.norm_table(histories)
    assert len(caught) == 1 and "['textures', 'mnist']" in str(caught[0].message)
    assert list(table.loc["CE"].index) == list(SPLITS)
    assert list(table.loc["LogitNorm τ=0.04"].index) == ["train", "test"]
    frame = histories["CE"]
    assert table.loc[("CE", "mnist"), "last epoch"] == pytest.approx(frame["norm_mnist_mean"].iloc[-1], rel=1e-3)


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
    fig = bound_plots.plot_lower_bound(taus, ks=ks, points=points, marker=(0.2, 100), y_floor=1e-30,
                                       subtitle="CIFAR-10, laptop recipe · seeds 0, 1")
    assert fig._suptitle.get_text() == "CIFAR-10, laptop recipe · seeds 0, 1"
    assert bound_plots.plot_lower_bound(ks=(10,))._suptitle is None  # no runs drawn: nothing to name
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
        bound_plots.plot_lower_bound(points=[{"tau": 0.1, "num_classes": 10}])


def test_save_figure_writes_pdf_and_png(tmp_path):
    fig = bound_plots.plot_lower_bound(ks=(10,))
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


def test_recipe_line_names_profile_recipe_and_seeds():
    from lnlab.runs import Seeds

    ci = Seeds([_run("ce", seed=s, profile="ci") for s in range(3)])
    assert plots.recipe_line({"CE": ci}) == "CIFAR-10, ci recipe: fastnet, 10 epochs, cpu · seeds 0, 1, 2"
    assert plots.recipe_line(ci[1]) == "CIFAR-10, ci recipe: fastnet, 10 epochs, cpu · seed 1"
    one = Seeds([_run("logitnorm", seed=0, profile="ci")])
    assert plots.recipe_line({"CE": ci, "LN": one}).endswith("· seeds 0, 1, 2 (LN: seed 0)")  # who has fewer seeds
    taus = {f"LogitNorm τ={t}": Seeds([_run("logitnorm", seed=0, profile="ci", tau=t)]) for t in (0.01, 0.02)}
    assert plots.recipe_line({"CE": ci, **taus}).endswith("· seeds 0, 1, 2 (LogitNorm τ=0.01, 0.02: seed 0)")
    from types import SimpleNamespace

    theirs = SimpleNamespace(config=SimpleNamespace(seed=None, recipe=lambda: "their model"))  # seed not known
    assert plots.recipe_line({"theirs": theirs, "LN": one}) == ("their model | CIFAR-10, ci recipe: fastnet, "
                                                               "10 epochs, cpu · seed 0")
    changed = _run("ce", profile="ci", weight_decay=1e-3)  # not a profile's recipe any more: no profile name
    assert plots.recipe_line([changed]) == "CIFAR-10, recipe: fastnet, 10 epochs, cpu · seed 0"
    assert plots.recipe_line({"CE": logits("ce")}) is None  # plain data: nothing to state
    fig = plots.plot_runs_norm_vs_epoch({"CE": ci}, splits=("test",))
    assert fig.get_suptitle() == "CIFAR-10, ci recipe: fastnet, 10 epochs, cpu · seeds 0, 1, 2"
    fig = plots.plot_runs_histograms({"CE": ci}, "textures")
    assert fig.get_suptitle() == "CIFAR-10, ci recipe: fastnet, 10 epochs, cpu · seed 0"  # histograms show the first seed


def test_effective_norm_is_one_over_tau_for_logitnorm_and_the_raw_norm_for_ce():
    runs = {"CE": _run("ce"), "LogitNorm τ=0.04": _run("logitnorm", seed=1)}
    fig = plots.plot_effective_norm(runs)
    axes = _visible_axes(fig)
    assert [ax.get_title() for ax in axes] == ["train (un-augmented subset)", "ID test"]
    _assert_labelled(fig)
    for ax, split in zip(axes, ("train", "test")):
        ce, effective, raw = ax.get_lines()
        np.testing.assert_allclose(ce.get_ydata(), runs["CE"].history_frame()[f"norm_{split}_mean"])
        np.testing.assert_allclose(effective.get_ydata(), 25.0)
        assert effective.get_linestyle() == "-" and "1/τ = 25" in effective.get_label()
        assert raw.get_linestyle() == "--" and "not what the loss sees" in raw.get_label()
        np.testing.assert_allclose(raw.get_ydata(), runs["LogitNorm τ=0.04"].history_frame()[f"norm_{split}_mean"])
    with pytest.raises(ValueError, match="pass Runs"):
        plots.plot_effective_norm({"CE": history("ce")})


def _fpr95(id_scores: np.ndarray, ood_scores: np.ndarray) -> float:
    """FPR on OOD at the highest threshold that keeps 95% of ID scores (continuous scores, no ties)."""
    threshold = np.sort(id_scores)[::-1][int(np.ceil(0.95 * len(id_scores))) - 1]
    return float(np.mean(ood_scores >= threshold))


def test_metrics_vs_epoch_match_an_independent_computation_on_the_snapshot_logits():
    runs = {"CE": _run("ce"), "LogitNorm τ=0.04": _run("logitnorm", seed=1)}
    fig = snapshot_plots.plot_metrics_vs_epoch(runs)
    axes = np.array(fig.axes).reshape(3, len(OODS))
    assert all(ax.get_xlabel().startswith("epoch") for ax in axes[-1]) and all(ax.get_ylabel() for ax in axes[:, 0])
    assert fig.legends
    assert [ax.get_title() for ax in axes[0]] == [f"OOD: {o}" for o in OODS]
    for j, ood in enumerate(OODS):
        for line, (label, run) in zip(axes[1, j].get_lines(), runs.items()):  # AUROC row
            assert line.get_label() == label
            np.testing.assert_allclose(line.get_xdata(), [1, 3, 6])
            expected = []
            for epoch in (1, 3, 6):
                ids = score("msp", run.snapshot(epoch, "test")).numpy()
                oods = score("msp", run.snapshot(epoch, ood)).numpy()
                expected.append(100 * roc_auc_score(np.r_[np.ones(len(ids)), np.zeros(len(oods))], np.r_[ids, oods]))
            np.testing.assert_allclose(line.get_ydata(), expected, rtol=1e-9)
        ce_fpr = axes[0, j].get_lines()[0].get_ydata()
        ce = runs["CE"]
        np.testing.assert_allclose(ce_fpr, [100 * _fpr95(score("msp", ce.snapshot(e, "test")).numpy(),
                                                         score("msp", ce.snapshot(e, ood)).numpy()) for e in (1, 3, 6)])
        solid, dotted = axes[2, j].get_lines()[:2]  # mean MSP of CE: OOD set, then ID test
        assert solid.get_linestyle() == "-" and dotted.get_linestyle() == ":"
        np.testing.assert_allclose(solid.get_ydata(), [float(score("msp", ce.snapshot(e, ood)).mean()) for e in (1, 3, 6)],
                                   rtol=1e-6)
        np.testing.assert_allclose(dotted.get_ydata(), [float(score("msp", ce.snapshot(e, "test")).mean())
                                                        for e in (1, 3, 6)], rtol=1e-6)


def test_metrics_vs_epoch_over_seeds_draw_the_mean_and_range_and_warn_about_missing_logits():
    from lnlab.runs import Seeds

    seeds = Seeds([_run("ce", seed=s) for s in range(3)])
    table = snapshot_plots.snapshot_metrics({"CE": seeds}, oods=["textures"])
    auroc = table[(table.metric == "auroc")].pivot(index="epoch", columns="seed", values="value")
    fig = snapshot_plots.plot_metrics_vs_epoch(table)
    ax = fig.axes[1]  # AUROC of the only OOD set
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), 100 * auroc.mean(axis=1))
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(100 * auroc.min().min()) and band.max() == pytest.approx(100 * auroc.max().max())
    assert "range over 3 seeds" in [t.get_text() for t in fig.legends[0].get_texts()]
    with pytest.warns(UserWarning) as caught:
        table = snapshot_plots.snapshot_metrics({"CE": seeds[0]}, oods=["textures", "svhn"])
    assert len(caught) == 1 and "CE (run abc) has no stored logits of svhn at epochs [1, 3, 6]" in str(caught[0].message)
    assert set(table["set"]) == {"test", "textures"}
    with pytest.raises(ValueError, match="needs the network"):
        snapshot_plots.snapshot_metrics({"CE": seeds}, score_name="odin")


def test_long_subtitle_wraps_inside_the_figure_and_keeps_every_word():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    text = "CIFAR-10, laptop recipe · seeds 0, 1, 2, 3, 4 (" + "; ".join(
        f"LogitNorm τ={t}: seeds 0, 1, 2" for t in (0.005, 0.01, 0.02, 0.04, 0.1)) + ")\nTiny ImageNet-100 · seed 0"
    fig, _ = plots.new_figure(2, 1, width=plots.DOUBLE_COLUMN)
    plots.add_subtitle(fig, text)
    shown = fig._suptitle.get_text()
    assert shown.split() == text.split() and shown.count("\n") > text.count("\n")  # wrapped, nothing lost
    assert shown.splitlines()[-1] == "Tiny ImageNet-100 · seed 0"  # the given line breaks are kept
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    box = fig._suptitle.get_window_extent(canvas.get_renderer())
    assert 0 <= box.x0 and box.x1 <= fig.bbox.width
    plots.add_subtitle(fig, "short line")
    assert fig._suptitle.get_text() == "short line"


def test_lower_bound_panels_keep_their_height_under_a_wrapped_subtitle():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    long = "CIFAR-10, laptop recipe · seeds 0, 1, 2, 3, 4 (" + "; ".join(
        f"LogitNorm τ={t}: seeds 0, 1, 2" for t in (0.01, 0.02, 0.04, 0.1)) + ")\nTiny ImageNet-100 · seeds 0, 1, 2"
    heights = []
    for subtitle in (None, long):
        fig = bound_plots.plot_lower_bound(ks=(10, 100), subtitle=subtitle)
        FigureCanvasAgg(fig).draw()
        heights.append(fig.axes[0].get_window_extent().height)
    assert fig._suptitle.get_text().count("\n") >= 2  # the long line was wrapped: three lines or more
    assert heights[1] == pytest.approx(heights[0], rel=0.03)
