"""Calibration of CE and LogitNorm networks: ECE and temperature scaling on held-out halves of the ID test set.

Temperature scaling (Guo et al., ICML 2017) divides the logits by one scalar ``T > 0`` fitted by
minimising the negative log-likelihood (NLL) on held-out data; it never changes a prediction.
Here the ID test set is split into two class-balanced, seeded halves: ``T`` is fitted on the
*fit* half and every number is reported on the other, *eval*, half.

For LogitNorm the raw logits ``f(x)`` are calibrated and scored, as in the official code (the loss
of paper Eq. 7 normalises them only during training). Wei et al. (arXiv 2205.09310v2) list better
ID calibration among LogitNorm's benefits (Sec. 1) and compare the ECE of CE and LogitNorm
networks; :func:`calibration_table` measures it on any pair of runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from lnlab.metrics import accuracy, ece, reliability_bins

LOG_T_BOUNDS = (math.log(1e-3), math.log(1e4))  # T searched in [0.001, 10,000]


def split_halves(labels: torch.Tensor | np.ndarray, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-balanced, seeded split of sample indices into a *fit* half and an *eval* half.

    Each class's indices are shuffled with ``seed`` and its first ``⌊n_c / 2⌋`` go to the fit half;
    the rest (the odd sample too) go to the eval half. Returns two sorted int64 index tensors.
    """
    labels = torch.as_tensor(np.asarray(labels)).long().reshape(-1)
    if labels.numel() < 2:
        raise ValueError(f"need at least 2 labelled samples to split into halves, got {labels.numel()}")
    g = torch.Generator().manual_seed(seed)
    fit, held = [], []
    for c in torch.unique(labels):
        members = torch.nonzero(labels == c).flatten()
        members = members[torch.randperm(members.numel(), generator=g)]
        half = members.numel() // 2
        fit.append(members[:half])
        held.append(members[half:])
    return torch.cat(fit).sort().values, torch.cat(held).sort().values


def nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood (nats) of ``softmax(logits / T)``, computed in float64."""
    return float(F.cross_entropy(torch.as_tensor(logits).double() / temperature, torch.as_tensor(labels).long()))


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature ``T`` minimising the NLL of ``softmax(logits / T)`` (Guo et al. 2017).

    The NLL is convex in ``1/T``, hence unimodal in ``log T``: a bounded scalar search (SciPy's
    Brent method, on ``log T`` in ``[1e-3, 1e4]``) finds the minimum to ~1e-7 relative precision.
    A ``T`` at a bound means the NLL is still falling there (e.g. every sample correct: ``T → 0``).
    """
    from scipy.optimize import minimize_scalar

    f = torch.as_tensor(logits).detach().double()
    y = torch.as_tensor(labels).long()
    if f.dim() != 2 or y.dim() != 1 or f.shape[0] != y.shape[0] or f.shape[0] == 0:
        raise ValueError(f"need logits (n, k) and labels (n,), got {tuple(f.shape)} and {tuple(y.shape)}")
    if not torch.isfinite(f).all():
        raise ValueError("logits contain NaN or inf")

    def objective(log_t: float) -> float:
        return float(F.cross_entropy(f * math.exp(-log_t), y))

    result = minimize_scalar(objective, bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-8})
    return float(math.exp(result.x))


@dataclass
class Calibration:
    """One run calibrated: its temperature (fitted on the fit half) and the eval half's probabilities."""

    label: str
    temperature: float
    fit_index: torch.Tensor
    eval_index: torch.Tensor
    eval_logits: torch.Tensor  # raw logits of the eval half
    eval_labels: torch.Tensor
    run_seed: int | None = None  # the training seed of the run (calibrate_seeds), not the split's seed

    def probabilities(self, scaled: bool) -> torch.Tensor:
        """Softmax of the eval half's raw logits, divided by ``T`` if ``scaled``."""
        return torch.softmax(self.eval_logits.double() / (self.temperature if scaled else 1.0), 1)

    def bins(self, scaled: bool, n_bins: int = 15) -> dict[str, np.ndarray]:
        return reliability_bins(self.probabilities(scaled), self.eval_labels, n_bins)

    def ece(self, scaled: bool, n_bins: int = 15) -> float:
        return ece(self.probabilities(scaled), self.eval_labels, n_bins)

    def ece_spread(self, scaled: bool, n_bins: int = 15, resamples: int = 200, seed: int = 0) -> float:
        """Bootstrap standard deviation of :meth:`ece` over resamples of the eval half (sampling noise)."""
        return ece_bootstrap_sd(self.probabilities(scaled), self.eval_labels, n_bins, resamples, seed)


def ece_bootstrap_sd(probabilities: torch.Tensor, labels: torch.Tensor, n_bins: int = 15, resamples: int = 200,
                     seed: int = 0) -> float:
    """Standard deviation of the ECE over ``resamples`` seeded bootstrap resamples (with replacement)."""
    g = torch.Generator().manual_seed(seed)
    n = len(labels)
    values = [ece(probabilities[index], labels[index], n_bins)
              for index in (torch.randint(0, n, (n,), generator=g) for _ in range(resamples))]
    return float(np.std(values, ddof=1))


def calibrate(logits: torch.Tensor, labels: torch.Tensor, label: str = "", seed: int = 0) -> Calibration:
    """Split ``(logits, labels)`` into halves (:func:`split_halves`) and fit ``T`` on the fit half only."""
    logits, labels = torch.as_tensor(logits).detach().float(), torch.as_tensor(labels).long()
    fit_index, eval_index = split_halves(labels, seed)
    temperature = fit_temperature(logits[fit_index], labels[fit_index])
    return Calibration(label, temperature, fit_index, eval_index, logits[eval_index], labels[eval_index])


def calibrate_runs(runs: Mapping[str, Any], seed: int = 0) -> dict[str, Calibration]:
    """:func:`calibrate` each run's ID test logits (``run.logits_for("test")``, ``run.labels``): ``{label: Calibration}``.

    A ``Seeds`` list (several seeds of one configuration) stands for its first seed here; :func:`calibrate_seeds`
    calibrates every seed."""
    if not runs:
        raise ValueError("runs is empty: pass {label: Run}, e.g. suite.comparison_runs('ci')")
    return {label: calibrate(run.logits_for("test"), run.labels, label, seed) for label, run in runs.items()}


def calibrate_seeds(runs: Mapping[str, Any], seed: int = 0) -> dict[str, list[Calibration]]:
    """Every seed calibrated: ``{label: [Calibration, one per seed]}`` for ``{label: Seeds or Run}``.

    Each run gets its own fit / eval split of its ID test set (split ``seed``, the same for every run) and
    its own ``T``; ``Calibration.run_seed`` is the run's training seed. :func:`calibration_table` takes the
    result (one row per run and seed) and :func:`calibration_summary` gives the mean and std over seeds.
    """
    if not runs:
        raise ValueError("runs is empty: pass {label: Run}, e.g. suite.comparison_runs('ci')")
    out = {}
    for label, group in runs.items():
        members = list(group) if isinstance(group, list) else [group]
        out[label] = [replace(calibrate(run.logits_for("test"), run.labels, label, seed), run_seed=_run_seed(run, i))
                      for i, run in enumerate(members)]
    return out


def _run_seed(run: Any, position: int) -> int:
    """A run's training seed (``run.config.seed``), else its position in its list of seeds."""
    value = getattr(getattr(run, "config", None), "seed", None)
    return int(value) if value is not None else position


def calibration_table(calibrations: Mapping[str, Calibration | Sequence[Calibration]], n_bins: int = 15) -> pd.DataFrame:
    """Per run, on the eval half: accuracy, fitted ``T``, ECE / NLL / mean confidence before and after scaling.

    ECE, accuracy and confidence are in %; NLL in nats; ``ECE sd`` is the bootstrap standard deviation
    of the ECE (sampling noise of the eval half). One row per run, indexed by its label; where the values
    are lists of calibrations (:func:`calibrate_seeds`), one row per run and seed, indexed by (run, seed).
    """
    per_seed = any(not isinstance(group, Calibration) for group in calibrations.values())
    rows = []
    for label, group in calibrations.items():
        for cal in ([group] if isinstance(group, Calibration) else group):
            rows.append({"run": label, **({"seed": cal.run_seed} if per_seed else {}), **_table_row(cal, n_bins)})
    return pd.DataFrame(rows).set_index(["run", "seed"] if per_seed else "run")


def _table_row(cal: Calibration, n_bins: int) -> dict[str, Any]:
    before, after = cal.probabilities(False), cal.probabilities(True)
    return {"n fit / eval": f"{len(cal.fit_index)} / {len(cal.eval_index)}",
            "accuracy %": 100 * accuracy(cal.eval_logits, cal.eval_labels), "T": cal.temperature,
            "ECE % before": 100 * cal.ece(False, n_bins), "ECE sd before": 100 * cal.ece_spread(False, n_bins),
            "ECE % after TS": 100 * cal.ece(True, n_bins), "ECE sd after": 100 * cal.ece_spread(True, n_bins),
            "NLL before": nll(cal.eval_logits, cal.eval_labels),
            "NLL after TS": nll(cal.eval_logits, cal.eval_labels, cal.temperature),
            "confidence % before": 100 * float(before.amax(1).mean()),
            "confidence % after TS": 100 * float(after.amax(1).mean())}


def calibration_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample std over seeds of every number of a per-seed :func:`calibration_table`.

    One row per run (in the table's order); columns ``(quantity, "mean" | "std")`` and ``("seeds", "")``.
    The std is NaN for a run with one seed.
    """
    if "seed" not in (table.index.names or []):
        raise ValueError("pass a per-seed table: calibration_table(calibrate_seeds(runs))")
    numbers = table.select_dtypes("number")
    grouped = numbers.groupby(level="run", sort=False)
    summary = pd.concat({"mean": grouped.mean(), "std": grouped.std()}, axis=1).swaplevel(axis=1)
    summary = summary[[(column, stat) for column in numbers.columns for stat in ("mean", "std")]]
    summary[("seeds", "")] = grouped.size()
    return summary


def describe_calibration(table: pd.DataFrame, digits: int = 2) -> str:
    """One Markdown paragraph of what a per-seed :func:`calibration_table` says, every number read from it.

    Per run: ECE before and after temperature scaling, ``T``, mean confidence against accuracy (over- or
    underconfident), as mean ± std over seeds (with one seed, ± is the bootstrap sd of the eval half).
    Then whether the first two runs differ after scaling by more than twice the larger noise (spread
    over seeds or bootstrap sd).
    """
    summary = calibration_summary(table)
    seeds = sorted({int(s) for s in table.index.get_level_values("seed")})
    n_eval = [f"{n:,}" for n in sorted({int(label.split(" / ")[1]) for label in table["n fit / eval"]})]

    def pm(run: str, column: str, sd: str | None = None) -> tuple[float, float]:
        mean, std = summary.loc[run, (column, "mean")], summary.loc[run, (column, "std")]
        if summary.loc[run, ("seeds", "")] < 2 and sd is not None:
            std = summary.loc[run, (sd, "mean")]
        return float(mean), float(std)

    def text(value: tuple[float, float]) -> str:
        mean, std = value
        return f"{mean:.{digits}f}" + ("" if math.isnan(std) else f" ± {std:.{digits}f}")

    several = len(seeds) > 1
    parts, noise = [], {}
    for run in summary.index:
        before, after = pm(run, "ECE % before", "ECE sd before"), pm(run, "ECE % after TS", "ECE sd after")
        confidence, acc = summary.loc[run, ("confidence % before", "mean")], summary.loc[run, ("accuracy %", "mean")]
        kind = "overconfident" if confidence > acc else "underconfident"
        parts.append(f"**{run}**: ECE {text(before)} % as trained ({kind}: mean confidence {confidence:.1f} % at "
                     f"{acc:.1f} % accuracy), T = {text(pm(run, 'T'))}, ECE {text(after)} % after temperature scaling")
        spreads = [summary.loc[run, ("ECE sd after", "mean")]] + ([after[1]] if several else [])
        noise[run] = max(v for v in spreads if not math.isnan(v))
    head = (f"Measured on these runs (seeds {', '.join(map(str, seeds))}; {' or '.join(n_eval)} eval images each; "
            + ("mean ± std over seeds" if several else "one seed, ± = bootstrap sd of the eval half") + "): ")
    paragraph = head + "; ".join(parts) + "."
    if len(summary) >= 2:
        a, b = summary.index[:2]
        gap = abs(pm(a, "ECE % after TS")[0] - pm(b, "ECE % after TS")[0])
        limit = 2 * max(noise[a], noise[b])
        verdict = "within the noise" if gap < limit else "beyond the noise"
        paragraph += (f" After temperature scaling the two differ by {gap:.{digits}f} points, {verdict} "
                      f"(twice the larger spread: {limit:.{digits}f}).")
    return paragraph


def reliability_panels(calibrations: Mapping[str, Calibration], n_bins: int = 15) -> tuple[dict, dict]:
    """``({title: bins}, {title: ece})`` for :func:`lnlab.plots.plot_reliability_diagrams`: every run
    before and after temperature scaling, in the order run 1, run 1 + TS, run 2, run 2 + TS, …"""
    panels, eces = {}, {}
    for label, cal in calibrations.items():
        for scaled in (False, True):
            title = f"{label}\n+ temperature scaling (T={cal.temperature:.3g})" if scaled else f"{label}\nno scaling (T = 1)"
            panels[title] = cal.bins(scaled, n_bins)
            eces[title] = cal.ece(scaled, n_bins)
    return panels, eces
