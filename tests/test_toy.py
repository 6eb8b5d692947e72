"""lnlab.toy (notebook 00): scale invariance, gradient orthogonality, norm dynamics, determinism, explorer."""

from __future__ import annotations

import math

import _synthetic  # noqa: F401  (Agg backend)
import numpy as np
import pytest
import torch

from lnlab import toy, toy_widgets
from lnlab.formatting import format_number
from lnlab.losses import logit_norm_loss


@pytest.fixture(scope="module")
def blobs():
    return toy.make_blobs(600, seed=0)


def _ce_by_hand(f: np.ndarray, target: int) -> float:
    """Cross-entropy of one logit vector written out in numpy: log(1 + Σ_{j≠y} exp(f_j − f_y))."""
    others = np.delete(f, target) - f[target]
    return float(np.log1p(np.exp(others).sum()))


def test_scaling_lowers_ce_of_the_top_class_but_not_logitnorm():
    f = (2.0, 1.0, -1.0)
    curve = toy.scale_curve(f, scales=[0.1, 1.0, 3.0, 30.0], tau=0.04)
    for target, part in curve.groupby("target"):
        np.testing.assert_allclose(part["ce"], [_ce_by_hand(s * np.array(f), target) for s in part["s"]],
                                   rtol=1e-9, atol=1e-14)
        assert np.ptp(part["logitnorm"].to_numpy()) < 1e-4 * part["logitnorm"].abs().max()  # flat (up to eps=1e-7)
        ce = part["ce"].to_numpy()
        assert (np.all(np.diff(ce) < 0) if target == 0 else np.all(np.diff(ce) > 0))  # top class: falls; others: rise
    top = curve[curve["target"] == 0]["logitnorm"].iloc[0]
    unit = np.array(f) / np.linalg.norm(f) / 0.04
    assert top == pytest.approx(_ce_by_hand(unit, 0), rel=1e-5)  # Eq. (7) at any s


def test_logitnorm_loss_of_the_toy_model_ignores_the_logit_scale(blobs):
    x, y = blobs
    logits = toy.make_mlp(seed=3)(x).detach()
    base = float(logit_norm_loss(logits, y, 0.1))
    for s in (0.01, 7.0, 1e3):
        assert float(logit_norm_loss(s * logits, y, 0.1)) == pytest.approx(base, rel=1e-4)
    ce = [float(torch.nn.functional.cross_entropy(s * logits, y)) for s in (1.0, 7.0)]
    assert abs(ce[0] - ce[1]) > 1e-3


def test_logitnorm_gradient_is_orthogonal_to_the_logits():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 5, generator=g, dtype=torch.float64) * 4
    targets = torch.randint(0, 5, (64,), generator=g)
    table = toy.gradient_alignment(logits, targets, tau=0.04, lr=0.5)
    ln, ce = table[table["loss"] == "logitnorm"], table[table["loss"] == "ce"]
    assert ln["cosine"].abs().max() < 1e-6
    assert (ln["norm_after"] >= ln["norm_before"] * (1 - 1e-12)).all()  # a step can only grow ‖f‖
    assert ce["cosine"].abs().min() > 1e-3  # the control: CE's gradient has a radial part
    # independent check: the radial derivative d/dε L((1+ε) f) by central differences is ~0
    f, t = logits[:1], targets[:1]
    eps = 1e-5
    radial = (float(logit_norm_loss(f * (1 + eps), t, 0.04)) - float(logit_norm_loss(f * (1 - eps), t, 0.04))) / (2 * eps)
    assert abs(radial) < 1e-6


def test_plain_gradient_steps_only_grow_the_last_layer_and_weight_decay_shrinks_it(blobs):
    x, y = blobs
    plain = toy.train_toy(x, y, "logitnorm", tau=0.1, steps=80, momentum=0.0, record_every=1)
    head = plain.history["head_norm"].to_numpy()
    assert head[-1] > 1.5 * head[0]
    assert np.all(np.diff(head) >= -1e-6 * head[1:])  # monotone: ‖w − ηg‖² = ‖w‖² + η²‖g‖²
    decayed = toy.train_toy(x, y, "logitnorm", tau=0.1, steps=80, momentum=0.0, weight_decay=0.05, record_every=1)
    late = decayed.history["head_norm"].to_numpy()[40:]
    assert np.all(np.diff(late) < 0) and late[-1] < head[-1]


def test_without_weight_decay_logitnorm_norm_runs_away_and_weight_decay_pulls_it_back(blobs):
    x, y = blobs
    runs = toy.train_grid(x, y, tau=0.04, weight_decays=(0.0, 5e-3), steps=400, record_every=20)
    free, decayed = runs["LogitNorm τ=0.04, no weight decay"], runs["LogitNorm τ=0.04, weight decay 5e-3"]
    ce = runs["CE, no weight decay"]
    assert free.final["accuracy"] == 1.0 and ce.final["accuracy"] == 1.0
    assert free.final["norm_mean"] > 20 * ce.final["norm_mean"]  # LogitNorm's loss never reins the norm in
    peak = decayed.history["norm_mean"].max()
    assert decayed.final["norm_mean"] < 0.5 * peak and decayed.final["norm_mean"] < 0.1 * free.final["norm_mean"]
    # the recorded norm is the mean raw logit norm of the final model on the data
    assert free.final["norm_mean"] == pytest.approx(float(free.logits(x).norm(dim=1).mean()), rel=1e-5)


def test_training_is_deterministic_and_seeded(blobs):
    x, y = blobs
    a, b = (toy.train_toy(x, y, "logitnorm", steps=30, seed=5) for _ in range(2))
    assert a.history.equals(b.history)
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(p, q)
    c = toy.train_toy(x, y, "logitnorm", steps=30, seed=6)
    assert not a.history["norm_mean"].equals(c.history["norm_mean"])
    state = torch.get_rng_state()
    toy.make_mlp(seed=1)
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is left alone
    assert torch.equal(toy.make_blobs(100, seed=2)[0], toy.make_blobs(100, seed=2)[0])


def test_blobs_rings_and_msp_doubt():
    x, y = toy.make_blobs(300, seed=1)
    assert torch.bincount(y).tolist() == [100, 100, 100] and x.norm(dim=1).max() < 4.5
    ring = toy.ring_points(2000, 4.0, 6.0, seed=0)
    radius = ring.norm(dim=1)
    assert radius.min() >= 4.0 - 1e-5 and radius.max() <= 6.0 + 1e-5
    assert abs(float((radius < 5.0).float().mean()) - (25 - 16) / (36 - 16)) < 0.04  # area-uniform
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0], [200.0, 0.0, 1.0]])
    doubt = toy.msp_doubt(logits)
    np.testing.assert_allclose(doubt[:2], 1 - torch.softmax(logits[:2].double(), 1).amax(1), rtol=1e-12)
    assert 0 < float(doubt[2]) == pytest.approx(math.exp(1 - 200) + math.exp(-200), rel=1e-9)


def test_ring_table_auroc_matches_a_pairwise_count(blobs):
    x, y = blobs
    run = toy.train_toy(x, y, "ce", steps=50)
    table = toy.ring_table({"ce": run}, x, rings=((4.0, 6.0),), n=300)
    data = torch.softmax(run.logits(x), 1).amax(1).numpy()
    far = torch.softmax(run.logits(toy.ring_points(300, 4.0, 6.0, seed=1)), 1).amax(1).numpy()
    pairwise = (data[:, None] > far[None, :]).mean() + 0.5 * (data[:, None] == far[None, :]).mean()
    assert table.loc[("ce", "4–6"), "auroc_msp"] == pytest.approx(pairwise, abs=1e-9)
    assert table.loc[("ce", "4–6"), "msp_ring"] == pytest.approx(far.mean(), rel=1e-6)
    assert table.loc[("ce", "4–6"), "doubt_ring"] == pytest.approx(1 - far.astype(np.float64).mean(), rel=1e-3)


def test_the_numbers_notebook_00_prints_are_read_from_the_runs(blobs):
    x, y = blobs
    runs = toy.train_grid(x, y, tau=0.04, weight_decays=(0.0, 5e-3), steps=200, record_every=10)
    summary = toy.summary_table(runs)
    for label, run in runs.items():
        h, row = run.history, summary.loc[label]
        step = row["correct from step"]
        if math.isnan(step):  # not every point correct at the end
            assert run.final["accuracy"] < 1.0
        else:
            assert (h[h["step"] >= step]["accuracy"] == 1.0).all()
            assert step == 0 or h[h["step"] == step - 10]["accuracy"].iloc[0] < 1.0  # the first step of the streak
        assert row["norm peak"] == h["norm_mean"].max() and h.loc[h["step"] == row["peak step"], "norm_mean"].iloc[0] == row["norm peak"]
        late = h[h["step"] >= 160]["norm_mean"]
        assert row["norm change, last fifth %"] == pytest.approx(100 * (late.iloc[-1] / late.iloc[0] - 1))
        assert row["last layer last"] == pytest.approx(toy.head_norm(run.model))
        assert row["norm r=20 / r=10"] == pytest.approx(toy.norm_vs_radius(run, [20.0])[0] / toy.norm_vs_radius(run, [10.0])[0])
    assert summary["correct from step"].notna().sum() >= 3  # CE (both) and LogitNorm with weight decay get there

    plane = toy.plane_table(runs, resolution=60)
    run = runs["CE, no weight decay"]
    grid = toy.confidence_map(run, resolution=60)
    assert plane.loc["CE, no weight decay", "share MSP > 0.999"] == pytest.approx(float((grid["doubt"] < 1e-3).mean()))
    axis = grid["axis"]
    beyond = np.hypot(*np.meshgrid(axis, axis)) >= 4.0
    assert plane.loc["CE, no weight decay", "share MSP > 0.999, ‖x‖ ≥ 4"] == pytest.approx(
        float((grid["doubt"][beyond] < 1e-3).mean()))


def test_short_training_converges_at_the_papers_tau_and_not_at_a_tiny_one(blobs):
    x, y = blobs
    short = toy.short_training_table(x, y, [0.005, 0.04], steps=300)
    assert list(short.index) == [0.005, 0.04]
    assert short.loc[0.04, "train accuracy"] >= 0.99 > short.loc[0.005, "train accuracy"]
    again = toy.train_toy(x, y, "logitnorm", tau=0.04, steps=300, record_every=6)
    assert short.loc[0.04, "train accuracy"] == again.final["accuracy"] and short.loc[0.04, "seconds"] > 0


def test_toy_figures(blobs):
    x, y = blobs
    runs = toy.train_grid(x, y, steps=20, record_every=5)
    fig = toy.plot_toy_norms(runs, radii=[0.5, 5, 10])
    assert [ax.get_title() for ax in fig.axes] == ["raw logit norm on the training data", "norm of the last layer",
                                                   "after training: norm vs distance"]
    assert len(fig.axes[0].get_lines()) == 4
    maps = toy.plot_toy_maps(runs, x, y, resolution=40)
    assert [ax.get_title() for ax in maps.axes[:4]] == [label.replace(", ", "\n") for label in runs]
    assert "MSP" in maps.axes[-1].get_ylabel()  # the colour bar
    scale = toy.plot_scale_curve(toy.scale_curve(scales=[0.5, 2.0]), tau=0.04)
    assert len(scale.axes[0].get_lines()) == 6 and scale.axes[0].get_xscale() == "log"


def test_toy_explorer_retrains_at_the_new_tau(blobs):
    explorer = toy_widgets.toy_explorer(tau=0.04, steps=40, n=600, resolution=40)
    first_text, first_png = explorer.text, bytes(explorer.widget.children[-1].value)
    first_image = explorer.figure.axes[0].images[0].get_array().copy()
    assert explorer.state["run"].tau == pytest.approx(0.04) and "τ=0.04" in explorer.text

    explorer.controls["tau"].value = 0.5
    tau = explorer.controls["tau"].value
    x, y = blobs
    reference = toy.train_toy(x, y, "logitnorm", tau=tau, steps=40, record_every=1)
    assert explorer.state["tau"] == tau and explorer.state["run"].tau == pytest.approx(tau)
    assert explorer.state["norm"] == pytest.approx(float(reference.final["norm_mean"]), rel=1e-6)
    assert format_number(explorer.state["norm"]) in explorer.text and f"τ={tau:g}" in explorer.text
    assert explorer.text != first_text and bytes(explorer.widget.children[-1].value) != first_png
    assert f"LogitNorm τ={tau:g}" in explorer.figure.axes[0].get_title()
    assert not np.allclose(explorer.figure.axes[0].images[0].get_array(), first_image)
