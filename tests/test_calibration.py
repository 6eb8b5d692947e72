"""lnlab.calibration: class-balanced halves, temperature scaling against known temperatures, tables, figure."""

from __future__ import annotations

from types import SimpleNamespace

import _synthetic  # noqa: F401  (Agg backend)
import numpy as np
import pytest
import torch

from lnlab import calibration, plots
from lnlab.metrics import ece


def calibrated_logits(n: int = 20000, k: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``z`` of a perfectly calibrated model: each label is drawn from ``softmax(z)``."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, k, generator=g, dtype=torch.float64) * 2.0
    labels = torch.multinomial(torch.softmax(z, 1), 1, generator=g).flatten()
    return z, labels


def numpy_nll(logits: np.ndarray, labels: np.ndarray, t: float) -> float:
    scaled = logits / t
    m = scaled.max(1, keepdims=True)
    log_z = m[:, 0] + np.log(np.exp(scaled - m).sum(1))
    return float(np.mean(log_z - scaled[np.arange(len(labels)), labels]))


def test_split_halves_is_balanced_disjoint_complete_and_seeded():
    labels = torch.tensor([0] * 7 + [1] * 10 + [2] * 3)[torch.randperm(20, generator=torch.Generator().manual_seed(1))]
    fit, held = calibration.split_halves(labels, seed=0)
    assert sorted(fit.tolist() + held.tolist()) == list(range(20))
    for c, n in ((0, 7), (1, 10), (2, 3)):
        assert int((labels[fit] == c).sum()) == n // 2 and int((labels[held] == c).sum()) == n - n // 2
    again = calibration.split_halves(labels, seed=0)
    assert torch.equal(again[0], fit) and torch.equal(again[1], held)
    assert not torch.equal(calibration.split_halves(labels, seed=1)[0], fit)


@pytest.mark.parametrize("true_t", [0.5, 2.5, 10.0])
def test_fit_temperature_recovers_a_known_temperature(true_t):
    z, labels = calibrated_logits()
    observed = z * true_t  # the calibrated model's logits, miscalibrated by a factor 1/T
    fitted = calibration.fit_temperature(observed.float(), labels)
    assert fitted == pytest.approx(true_t, rel=0.05)
    before = ece(torch.softmax(observed, 1), labels)
    after = ece(torch.softmax(observed / fitted, 1), labels)
    assert after < 0.015 and after < before


def test_fit_temperature_is_the_nll_minimum_of_an_independent_grid_search():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(500, 4, generator=g, dtype=torch.float64) * 6
    labels = torch.where(torch.rand(500, generator=g) < 0.7, logits.argmax(1), torch.randint(0, 4, (500,), generator=g))
    fitted = calibration.fit_temperature(logits, labels)
    grid = np.exp(np.linspace(np.log(0.1), np.log(100), 4001))
    values = [numpy_nll(logits.numpy(), labels.numpy(), t) for t in grid]
    best = grid[int(np.argmin(values))]
    assert fitted == pytest.approx(best, rel=3e-3)
    assert calibration.nll(logits, labels, fitted) <= min(values) + 1e-9
    assert calibration.nll(logits, labels, fitted) == pytest.approx(numpy_nll(logits.numpy(), labels.numpy(), fitted))


def test_calibrate_fits_on_the_fit_half_only():
    z, labels = calibrated_logits(n=8000, seed=4)
    fit, held = calibration.split_halves(labels, seed=0)
    logits = z.clone()
    logits[fit] *= 2.0   # the fit half is overconfident by 2
    logits[held] *= 6.0  # the eval half by 6: a fit that peeked at it would land in between
    cal = calibration.calibrate(logits, labels, "synthetic", seed=0)
    assert torch.equal(cal.fit_index, fit) and torch.equal(cal.eval_index, held)
    assert cal.temperature == pytest.approx(calibration.fit_temperature(logits[fit], labels[fit]), rel=1e-6)
    assert cal.temperature == pytest.approx(2.0, rel=0.06)
    assert torch.equal(cal.eval_labels, labels[held])
    np.testing.assert_allclose(cal.probabilities(True), torch.softmax(logits[held].float().double() / cal.temperature, 1))


def _run(logits, labels):
    return SimpleNamespace(logits_for={"test": logits}.__getitem__, labels=labels)


def test_calibration_table_reports_the_eval_half():
    z, labels = calibrated_logits(n=4000, seed=5)
    runs = {"over": _run((z * 3).float(), labels), "calibrated": _run(z.float(), labels)}
    cals = calibration.calibrate_runs(runs, seed=0)
    table = calibration.calibration_table(cals)
    assert list(table.index) == ["over", "calibrated"]
    held = cals["over"].eval_index
    probs = torch.softmax((z * 3).float()[held].double(), 1)
    assert table.loc["over", "ECE % before"] == pytest.approx(100 * ece(probs, labels[held]))
    assert table.loc["over", "accuracy %"] == pytest.approx(100 * float((probs.argmax(1) == labels[held]).double().mean()))
    assert table.loc["over", "T"] == pytest.approx(3.0, rel=0.1)
    assert table.loc["over", "ECE % after TS"] < 5 < 20 < table.loc["over", "ECE % before"]
    assert table.loc["calibrated", "T"] == pytest.approx(1.0, rel=0.1)
    assert table.loc["over", "NLL after TS"] < table.loc["over", "NLL before"]
    assert 0 < table.loc["over", "ECE sd after"] < 2
    fit, held = calibration.split_halves(labels, seed=0)
    assert table.loc["over", "n fit / eval"] == f"{len(fit)} / {len(held)}" and len(fit) + len(held) == 4000


def _seeded(logits, labels, seed):
    return SimpleNamespace(logits_for={"test": logits}.__getitem__, labels=labels, config=SimpleNamespace(seed=seed))


def test_every_seed_is_calibrated_and_the_summary_and_text_come_from_the_table():
    from lnlab.runs import Seeds

    over, under = [], []
    for seed, (a, b) in enumerate(((3.0, 0.2), (3.3, 0.25), (2.7, 0.15))):
        z, labels = calibrated_logits(n=3000, seed=10 + seed)
        over.append(_seeded((z * a).float(), labels, seed))
        under.append(_seeded((z * b).float(), labels, seed))
    cals = calibration.calibrate_seeds({"over": Seeds(over), "under": Seeds(under)})
    assert [c.run_seed for c in cals["over"]] == [0, 1, 2]
    for cal, run in zip(cals["under"], under):  # each seed: its own split and its own T
        alone = calibration.calibrate(run.logits_for("test"), run.labels)
        assert cal.temperature == pytest.approx(alone.temperature) and torch.equal(cal.eval_index, alone.eval_index)
    table = calibration.calibration_table(cals)
    assert list(table.index) == [(r, s) for r in ("over", "under") for s in (0, 1, 2)]
    summary = calibration.calibration_summary(table)
    for run in ("over", "under"):
        for column in ("T", "ECE % before", "ECE % after TS", "accuracy %"):
            values = table.loc[run, column].to_numpy(dtype=float)
            assert summary.loc[run, (column, "mean")] == pytest.approx(values.mean())
            assert summary.loc[run, (column, "std")] == pytest.approx(values.std(ddof=1))
        assert summary.loc[run, ("seeds", "")] == 3
    assert summary.loc["over", ("T", "mean")] == pytest.approx(3.0, rel=0.1)
    text = calibration.describe_calibration(table)
    mean, std = summary.loc["under", ("ECE % before", "mean")], summary.loc["under", ("ECE % before", "std")]
    assert f"**under**: ECE {mean:.2f} ± {std:.2f} % as trained (underconfident" in text
    assert "**over**: ECE" in text and "(overconfident" in text and "seeds 0, 1, 2" in text
    assert "mean ± std over seeds" in text and "within the noise" in text
    one = calibration.calibration_table(calibration.calibrate_seeds({"over": Seeds(over[:1]), "under": Seeds(under[:1])}))
    assert "one seed, ± = bootstrap sd of the eval half" in calibration.describe_calibration(one)
    with pytest.raises(ValueError, match="per-seed table"):
        calibration.calibration_summary(calibration.calibration_table(calibration.calibrate_runs({"a": over[0]})))


def test_reliability_diagrams_one_column_per_panel():
    z, labels = calibrated_logits(n=2000, seed=6)
    cals = calibration.calibrate_runs({"A": _run((z * 2).float(), labels)})
    panels, eces = calibration.reliability_panels(cals)
    assert len(panels) == 2 and all(title.startswith("A\n") for title in panels)
    fig = plots.plot_reliability_diagrams(panels, eces)
    top = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in top] == list(panels)
    texts = [t.get_text() for ax in top for t in ax.texts]
    assert [f"ECE {100 * v:.1f}%" in text for v, text in zip(eces.values(), texts)] == [True, True]
    with pytest.raises(ValueError, match="panels is empty"):
        plots.plot_reliability_diagrams({})


def test_bad_inputs():
    with pytest.raises(ValueError, match="need logits"):
        calibration.fit_temperature(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="NaN"):
        calibration.fit_temperature(torch.full((2, 2), float("nan")), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="at least 2"):
        calibration.split_halves(torch.tensor([1]))
    with pytest.raises(ValueError, match="runs is empty"):
        calibration.calibrate_runs({})
