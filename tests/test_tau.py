"""Choosing τ on validation data only (held-out ID images vs validation noise), on synthetic runs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lnlab import tau as tau_rule
from lnlab.config import TrainConfig
from lnlab.runs import Seeds

K, N = 10, 400


def _logits(margin: float, seed: int, ood_spread: float) -> dict[str, torch.Tensor]:
    """ID rows peak at their label by ``margin``; OOD rows are plain noise of scale ``ood_spread``."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, K, (N,), generator=g)
    out = {}
    for name in ("test", "val"):
        x = torch.randn(N, K, generator=g)
        x[torch.arange(N), labels] += margin
        out[name] = x
    out["gaussian_val"] = torch.randn(N, K, generator=g) * ood_spread
    out["textures"] = torch.randn(N, K, generator=g) * ood_spread
    return out, labels


def _run(loss: str, tau: float, seed: int, val_noise: float, test_noise: float, reads: list) -> SimpleNamespace:
    logits, labels = _logits(3.0, seed, 1.0)
    logits["gaussian_val"] = logits["gaussian_val"] * val_noise
    logits["textures"] = logits["textures"] * test_noise

    def logits_for(name):
        reads.append(name)
        return logits[name]

    return SimpleNamespace(config=TrainConfig(loss=loss, tau=tau, seed=seed, model="fastnet", ood=("textures",)),
                           logits_for=logits_for, labels=labels, labels_for=lambda name: labels,
                           has_weights=False, stored=logits)  # like a portable run: only these sets


@pytest.fixture()
def runs_and_reads():
    """τ=0.1 separates validation noise best; τ=0.01 separates the test set (textures) best."""
    reads: list[str] = []
    spec = {("ce", 0.04): (1.0, 1.0), ("logitnorm", 0.01): (2.0, 0.3), ("logitnorm", 0.04): (1.5, 1.5),
            ("logitnorm", 0.1): (0.3, 2.0)}
    runs = {}
    for (loss, tau), (val_noise, test_noise) in spec.items():
        label = "CE" if loss == "ce" else f"LogitNorm τ={tau:g}"
        runs[label] = Seeds(_run(loss, tau, s, val_noise, test_noise, reads) for s in (0, 1))
    return runs, reads


def test_pick_tau_uses_only_validation_sets(runs_and_reads):
    runs, reads = runs_and_reads
    assert tau_rule.pick_tau(runs) == 0.1
    assert set(reads) == {"val", "gaussian_val"}  # never "test" nor a test OOD set


def test_validation_averages_the_validation_sets_every_run_has(runs_and_reads):
    runs, _ = runs_and_reads
    assert tau_rule.validation_oods(runs) == ["gaussian_val"]
    for group in runs.values():  # give every run a second validation set: the rule averages both
        for run in group:
            run.stored["val_jigsaw"] = run.stored["gaussian_val"] * 0 + torch.randn_like(run.stored["gaussian_val"])
    assert tau_rule.validation_oods(runs) == ["gaussian_val", "val_jigsaw"]
    table = tau_rule.validation_metrics(runs, per_set=True)
    mean = tau_rule.validation_metrics(runs)
    for label in runs:
        both = table.loc[["gaussian_val", "val_jigsaw"], (label, "msp", "auroc", "mean")].mean()
        assert mean.loc[label, ("auroc", "mean")] == pytest.approx(both)


def test_the_test_sets_would_pick_another_tau(runs_and_reads):
    runs, _ = runs_and_reads
    assert tau_rule.choice_by_test_sets(runs, ["textures"]) == 0.01


def test_tau_table_has_one_row_per_run_with_validation_and_test_columns(runs_and_reads):
    runs, _ = runs_and_reads
    table = tau_rule.tau_table(runs, ["textures"])
    assert list(table.index) == list(runs) and (table["seeds"] == 2).all()
    assert table.loc["LogitNorm τ=0.1", "val_auroc"] == table["val_auroc"].max()
    assert table.loc["LogitNorm τ=0.01", "textures_auroc"] == table["textures_auroc"].max()
    assert table["accuracy"].between(0, 100).all() and (table["accuracy_std"] >= 0).all()


def test_pick_tau_needs_logitnorm_runs(runs_and_reads):
    runs, _ = runs_and_reads
    with pytest.raises(ValueError, match="no LogitNorm run"):
        tau_rule.pick_tau({"CE": runs["CE"]})


def _seed_rows(values: dict[float, list[float]], accuracy: dict[float, float] | None = None):
    import pandas as pd

    return pd.DataFrame([{"value": v, "seed": s, "label": f"τ={v:g}", "auroc": a, "fpr95": 100 - a,
                          "val_accuracy": (accuracy or {}).get(v, 90.0)}
                         for v, aurocs in values.items() for s, a in enumerate(aurocs)])


def test_a_pick_that_wins_every_seed_holds(monkeypatch):
    monkeypatch.setattr(tau_rule, "seed_table", lambda runs, loss="logitnorm", score="msp": _seed_rows(
        {0.01: [80.0, 81.0, 79.0], 0.04: [74.0, 78.0, 75.0]}))
    stability = tau_rule.pick_stability({})
    assert stability.pick == 0.01 and stability.seed_picks == {0: 0.01, 1: 0.01, 2: 0.01}
    assert stability.bootstrap == {0.01: 1.0, 0.04: 0.0}  # every resampled mean of 0.01 is above every one of 0.04
    assert stability.holds and "The pick holds." in stability.summary()


def test_a_pick_the_resamples_do_not_confirm_does_not_hold(monkeypatch):
    # τ 0.04 has seeds 90, 70, 70 (mean 76.7) against 0.01's 80, 80, 80: the rule picks 0.01, seed 0 alone picks
    # 0.04, and a resample of 0.04's seeds beats 80 only when it draws the 90 at least twice: 7/27 = 25.9 %.
    monkeypatch.setattr(tau_rule, "seed_table", lambda runs, loss="logitnorm", score="msp": _seed_rows(
        {0.01: [80.0, 80.0, 80.0], 0.04: [90.0, 70.0, 70.0]}))
    stability = tau_rule.pick_stability({}, resamples=40_000)
    assert stability.pick == 0.01 and stability.seed_picks == {0: 0.04, 1: 0.01, 2: 0.01}
    assert stability.seed_wins == {0.01: 2, 0.04: 1}
    assert stability.bootstrap[0.04] == pytest.approx(7 / 27, abs=0.01)
    assert not stability.holds and "does not hold" in stability.summary()
    table = tau_rule.stability_table(stability)
    assert table.loc[0.04, "seeds_won"] == 1 and table.loc[0.04, "seed 0"] == 90.0 and table.loc[0.01, "picked"]


def test_one_seed_per_candidate_says_the_stability_is_unknown(monkeypatch):
    monkeypatch.setattr(tau_rule, "seed_table", lambda runs, loss="logitnorm", score="msp": _seed_rows(
        {0.01: [80.0], 0.04: [75.0, 76.0, 77.0]}))
    stability = tau_rule.pick_stability({})
    assert not stability.holds and "is not known" in stability.summary()


def test_a_candidate_that_loses_held_out_accuracy_is_not_picked(monkeypatch):
    monkeypatch.setattr(tau_rule, "seed_table", lambda runs, loss="logitnorm", score="msp": _seed_rows(
        {1e-4: [70.0], 1e-3: [75.0], 1e-2: [85.0]}, accuracy={1e-4: 87.3, 1e-3: 87.0, 1e-2: 84.0}))
    assert tau_rule.pick({}, "logit_penalty") == 1e-2
    assert tau_rule.pick({}, "logit_penalty", min_val_accuracy=86.3) == 1e-3
    with pytest.raises(ValueError, match="keeps 90.00 %"):
        tau_rule.pick({}, "logit_penalty", min_val_accuracy=90.0)


def test_describe_transfer_reads_every_number_from_the_tables(monkeypatch):
    import pandas as pd

    table = pd.DataFrame([
        {"tau": float("nan"), "val_auroc": 70.0, "val_auroc_std": 1.0, "near_auroc": 61.25, "near_auroc_std": 0.5},
        {"tau": 0.01, "val_auroc": 80.0, "val_auroc_std": 1.5, "near_auroc": 63.75, "near_auroc_std": 0.25},
        {"tau": 0.04, "val_auroc": 76.0, "val_auroc_std": 2.5, "near_auroc": 62.5, "near_auroc_std": float("nan")},
    ], index=["CE", "LogitNorm τ=0.01", "LogitNorm τ=0.04"])
    stability = tau_rule.Stability(0.01, {0: 0.01, 1: 0.01}, {0.01: 0.9, 0.04: 0.1}, {0.01: [0, 1], 0.04: [0, 1]})
    text = tau_rule.describe_transfer({"Set (k = 100)": (table, stability)}, {"Set (k = 100)": ["near"]})
    assert "80.0 ± 1.5 % at τ = 0.01 against 76.0 ± 2.5 % at τ = 0.04: a gap of 4.0 points, larger than the larger std" in text
    assert "near: CE 61.2 ± 0.5, τ = 0.04 62.5, τ = 0.01 63.8 ± 0.2" in text
    assert "The pick holds." in text and "OpenOOD v1.5" in text


def test_describe_transfer_with_one_tau_says_there_is_nothing_to_choose_and_compares_with_ce():
    import pandas as pd

    table = pd.DataFrame([
        {"tau": float("nan"), "val_auroc": 58.0, "val_auroc_std": float("nan"), "near_auroc": 62.0},
        {"tau": 0.04, "val_auroc": 41.8, "val_auroc_std": float("nan"), "near_auroc": 64.0},
    ], index=["CE", "LogitNorm τ=0.04"])
    stability = tau_rule.Stability(0.04, {0: 0.04}, {0.04: 1.0}, {0.04: [0]})
    text = tau_rule.describe_transfer({"Set (k = 100)": (table, stability)}, {"Set (k = 100)": ["near"]})
    assert "Only τ = 0.04 is trained so far (seeds [0]): nothing to choose between yet." in text
    assert "Validation picks" not in text and "itself" not in text
    assert "CE's validation MSP AUROC is 58.0 %; τ = 0.04: 41.8 %." in text
    assert "near: CE 62.0, τ = 0.04 64.0." in text  # the pick is 0.04 itself: not listed twice


def test_describe_transfer_counts_the_seeds_where_the_pick_beats_the_reference_tau():
    import pandas as pd

    table = pd.DataFrame([
        {"tau": 0.005, "val_auroc": 45.0, "val_auroc_std": 5.0, "near_auroc": 62.0},
        {"tau": 0.04, "val_auroc": 41.5, "val_auroc_std": 1.7, "near_auroc": 63.0},
    ], index=["LogitNorm τ=0.005", "LogitNorm τ=0.04"])
    seeds = pd.DataFrame({"value": [0.005] * 3 + [0.04] * 4, "seed": [0, 1, 2, 0, 1, 2, 3],
                          "auroc": [50.2, 45.9, 39.0, 41.8, 43.0, 39.7, 90.0], "fpr95": [90.0] * 7})
    stability = tau_rule.Stability(0.005, {0: 0.005, 1: 0.005, 2: 0.04}, {0.005: 0.8, 0.04: 0.2},
                                   {0.005: [0, 1, 2], 0.04: [0, 1, 2, 3]}, seeds)
    text = tau_rule.describe_transfer({"Set": (table, stability)}, {"Set": ["near"]})
    # seed 3 has τ 0.04 only: it is not compared; at seed 2 0.04 is the higher
    assert "Seed by seed (the seeds both have: 0, 1, 2), τ = 0.005 is the higher on validation at 2 of 3." in text
    assert tau_rule.head_to_head(tau_rule.Stability(0.005, {}, {}, {}), 0.005, 0.04) == ""


def test_a_pick_is_called_validated_only_where_it_holds():
    both = {0.005: [0, 1, 2], 0.04: [0, 1, 2]}
    holding = tau_rule.Stability(0.005, {0: 0.005, 1: 0.005, 2: 0.04}, {0.005: 0.9, 0.04: 0.1}, both)
    assert holding.verdict == "holds" and holding.pick_label() == "validated τ = 0.005"
    losing = tau_rule.Stability(0.005, {0: 0.005, 1: 0.04, 2: 0.04}, {0.005: 0.6, 0.04: 0.4}, both)
    assert losing.pick_label() == "validation's pick τ = 0.005 (does not hold)"
    single = tau_rule.Stability(0.005, {0: 0.005}, {0.005: 0.9, 0.01: 0.1}, {0.005: [0, 1, 2], 0.01: [0]})
    assert single.pick_label("λ") == "validation's pick λ = 0.005 (not known to hold)"
