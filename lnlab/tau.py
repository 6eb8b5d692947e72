"""Choosing LogitNorm's temperature τ without looking at the test OOD sets (paper Sec. 5.1).

The paper tunes τ on validation data: held-out in-distribution images against Gaussian noise as
the validation OOD set. Here the ID side is ``"val"`` (training images the run did not train
on, :mod:`lnlab.splits`) and the OOD side the validation OOD sets ``VALIDATION_OOD_SETS``:
``"gaussian_val"`` (``clip(N(0, 0.5^2), -1, 1)`` in the network's input space, a seed stream
disjoint from the test noise) and, as in the Outlier Exposure line, three sets built from held-out
images (pixels permuted, patches shuffled, two images blended); runs exported before those existed
use ``gaussian_val`` alone. The rule: the τ whose runs have the highest validation AUROC of MSP,
averaged over those sets (ties: the lower validation FPR95). The test OOD
sets are never read by the rule; ``tau_table`` shows them next to it, so a reader can compare the
validated choice with the τ the test sets would have picked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import torch

from lnlab.evaluate import accuracy_table, ood_table, runs_of
from lnlab.splits import VALIDATION_ID, VALIDATION_OOD_SETS

VALIDATION_OOD = "gaussian_val"


def logitnorm_runs(runs: Mapping[str, Any]) -> dict[float, str]:
    """``{τ: label}`` of the LogitNorm entries of ``{label: Run or Seeds}``, sorted by τ."""
    found = {float(runs_of(g)[0].config.tau): label for label, g in runs.items()
             if runs_of(g)[0].config.loss == "logitnorm"}
    if not found:
        raise ValueError("no LogitNorm run among runs: pass comparison_runs(..., taus=[...]) with several τ")
    return dict(sorted(found.items()))


def validation_oods(runs: Mapping[str, Any]) -> list[str]:
    """The validation OOD sets every run can give logits for (a run without weights: those it stores)."""
    members = [r for g in runs.values() for r in runs_of(g)]
    found = [n for n in VALIDATION_OOD_SETS
             if all(getattr(r, "has_weights", True) or n in getattr(r, "stored", {}) for r in members)]
    if not found:
        raise ValueError(f"no run here has a validation OOD set ({list(VALIDATION_OOD_SETS)}); train runs that hold "
                         "images out (subset_per_class) or export them with the validation sets")
    return found


def validation_metrics(runs: Mapping[str, Any], score: str = "msp", per_set: bool = False) -> pd.DataFrame:
    """Validation AUROC and FPR95 (%, mean and std over seeds) per run: held-out ID images vs the
    validation OOD sets (:func:`validation_oods`), averaged over the sets; ``per_set``: the whole
    table, one row per set plus "mean"."""
    table = ood_table(runs, scores=[score], oods=validation_oods(runs), id_set=VALIDATION_ID)
    if per_set:
        return table
    row = table.loc["mean"].xs(score, level="score")
    return row.unstack(["metric", "stat"])


def pick_tau(runs: Mapping[str, Any], score: str = "msp") -> float:
    """The validated τ: highest mean validation AUROC of ``score``, ties broken by the lower FPR95."""
    labels = logitnorm_runs(runs)
    metrics = validation_metrics({label: runs[label] for label in labels.values()}, score)
    return min(labels, key=lambda t: (-metrics.loc[labels[t], ("auroc", "mean")], metrics.loc[labels[t], ("fpr95", "mean")]))


def choice_by_test_sets(runs: Mapping[str, Any], oods: Sequence[str], score: str = "msp") -> float:
    """The τ the *test* OOD sets would pick (highest mean AUROC over ``oods``): for comparison only."""
    labels = logitnorm_runs(runs)
    table = ood_table({label: runs[label] for label in labels.values()}, scores=[score], oods=oods)
    return max(labels, key=lambda t: table.loc["mean", (labels[t], score, "auroc", "mean")])


def tau_table(runs: Mapping[str, Any], oods: Sequence[str], score: str = "msp", n_bins: int = 15) -> pd.DataFrame:
    """One row per run (CE and each τ): accuracy, ECE, validation AUROC / FPR95 and test AUROC / FPR95
    per OOD set and their mean, in % (``_std`` columns: spread over seeds)."""
    from lnlab.metrics import ece

    test = ood_table(runs, scores=[score], oods=oods)
    val = validation_metrics(runs, score)
    accuracy = accuracy_table(runs)
    rows = []
    for label, group in runs.items():
        members = runs_of(group)
        config = members[0].config
        errs = pd.Series([100 * ece(torch.softmax(r.logits_for("test"), 1), r.labels_for("test"), n_bins)
                          for r in members])
        row = {"run": label, "tau": config.tau if config.loss == "logitnorm" else float("nan"), "seeds": len(members),
               "accuracy": accuracy.loc[label, "accuracy_mean"], "accuracy_std": accuracy.loc[label, "accuracy_std"],
               "ece": errs.mean(), "ece_std": errs.std(),
               "val_auroc": val.loc[label, ("auroc", "mean")], "val_auroc_std": val.loc[label, ("auroc", "std")],
               "val_fpr95": val.loc[label, ("fpr95", "mean")], "val_fpr95_std": val.loc[label, ("fpr95", "std")]}
        for ood in [*oods, "mean"]:
            for metric in ("auroc", "fpr95"):
                row[f"{ood}_{metric}"] = test.loc[ood, (label, score, metric, "mean")]
                row[f"{ood}_{metric}_std"] = test.loc[ood, (label, score, metric, "std")]
        rows.append(row)
    return pd.DataFrame(rows).set_index("run")
