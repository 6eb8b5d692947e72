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

Whether a pick *holds* across seeds (:func:`pick_stability`): the rule applied to each seed alone, and to
bootstrap resamples of each candidate's seeds; the pick holds when the mean's pick also wins on most seeds
and in at least ``HOLDS_FRACTION`` of the resamples (benchmarks/RESULTS.md, "This round's training
protocol"). The same rule chooses any loss's hyperparameter (:func:`candidate_runs`: τ of LogitNorm, λ of the
logit penalty, α of label smoothing), optionally among the candidates that keep the held-out accuracy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from lnlab.evaluate import accuracy_table, ood_table, runs_of
from lnlab.splits import VALIDATION_ID, VALIDATION_OOD_SETS

VALIDATION_OOD = "gaussian_val"
HOLDS_FRACTION = 0.8  # of bootstrap resamples the pick must win for it to hold
BOOTSTRAP_RESAMPLES = 10_000


def candidate_runs(runs: Mapping[str, Any], loss: str = "logitnorm") -> dict[float, str]:
    """``{hyperparameter: label}`` of the entries of ``{label: Run or Seeds}`` trained with ``loss`` (τ for
    LogitNorm, λ for the logit penalty, α for label smoothing), sorted by the value."""
    found = {float(runs_of(g)[0].config.loss_parameter()): label for label, g in runs.items()
             if runs_of(g)[0].config.loss == loss}
    if not found:
        name, how = {"logitnorm": ("LogitNorm", "comparison_runs(..., taus=[...]) with several τ"),
                     "logit_penalty": ("logit penalty", "runs of several λ"),
                     "label_smoothing": ("label smoothing", "runs of several α")}.get(loss, (loss, "several runs"))
        raise ValueError(f"no {name} run among runs: pass {how}")
    return dict(sorted(found.items()))


def logitnorm_runs(runs: Mapping[str, Any]) -> dict[float, str]:
    """``{τ: label}`` of the LogitNorm entries of ``{label: Run or Seeds}``, sorted by τ."""
    return candidate_runs(runs, "logitnorm")


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
    return pick(runs, "logitnorm", score)


def pick(runs: Mapping[str, Any], loss: str = "logitnorm", score: str = "msp",
         min_val_accuracy: float | None = None) -> float:
    """The validated hyperparameter of ``loss`` (module docstring): the highest validation AUROC of ``score``
    (mean over seeds), ties broken by the lower FPR95; with ``min_val_accuracy`` (%), only among the
    candidates whose mean accuracy on the held-out images reaches it (ValueError if none does)."""
    table = seed_table(runs, loss, score)
    means = table.groupby("value")[["auroc", "fpr95", "val_accuracy"]].mean()
    if min_val_accuracy is not None:
        means = means[means["val_accuracy"] >= min_val_accuracy]
        if means.empty:
            raise ValueError(f"no {loss} candidate keeps {min_val_accuracy:.2f} % accuracy on the held-out images")
    return float(min(means.index, key=lambda v: (-means.loc[v, "auroc"], means.loc[v, "fpr95"])))


def seed_table(runs: Mapping[str, Any], loss: str = "logitnorm", score: str = "msp") -> pd.DataFrame:
    """One row per candidate run and seed: ``value`` (its hyperparameter), ``seed``, the validation ``auroc``
    and ``fpr95`` of ``score`` averaged over the validation OOD sets, and ``val_accuracy`` (%, held-out images)."""
    from lnlab.metrics import ood_metrics
    from lnlab.evaluate import score_values

    labels = candidate_runs(runs, loss)
    oods = validation_oods({label: runs[label] for label in labels.values()})
    rows = []
    for value, label in labels.items():
        for run in runs_of(runs[label]):
            id_scores = score_values(run, score, VALIDATION_ID)
            metrics = [ood_metrics(id_scores, score_values(run, score, name)) for name in oods]
            accuracy = (run.logits_for(VALIDATION_ID).argmax(1) == run.labels_for(VALIDATION_ID)).float().mean()
            rows.append({"value": value, "seed": int(run.config.seed), "label": label,
                         "auroc": 100 * float(np.mean([m["auroc"] for m in metrics])),
                         "fpr95": 100 * float(np.mean([m["fpr95"] for m in metrics])),
                         "val_accuracy": 100 * float(accuracy)})
    return pd.DataFrame(rows)


@dataclass
class Stability:
    """How a validated pick holds across seeds (:func:`pick_stability`)."""

    pick: float  # the rule on the mean over seeds
    seed_picks: dict[int, float]  # the rule on each seed alone (seeds every candidate has)
    bootstrap: dict[float, float]  # fraction of resamples each candidate wins
    seeds: dict[float, list[int]]  # the seeds of each candidate
    table: pd.DataFrame | None = None  # :func:`seed_table`: each candidate's validation metrics per seed

    @property
    def seed_wins(self) -> dict[float, int]:
        """How many seeds each candidate wins alone."""
        return {value: sum(p == value for p in self.seed_picks.values()) for value in self.bootstrap}

    @property
    def holds(self) -> bool:
        """The mean's pick wins on most seeds and in at least ``HOLDS_FRACTION`` of the resamples."""
        if self.single_seeded:
            return False  # one seed of a candidate says nothing about its spread
        majority = len(self.seed_picks) > 0 and self.seed_wins[self.pick] * 2 > len(self.seed_picks)
        return majority and self.bootstrap[self.pick] >= HOLDS_FRACTION

    @property
    def single_seeded(self) -> list[float]:
        """The candidates trained at one seed only."""
        return [value for value, seeds in self.seeds.items() if len(seeds) < 2]

    @property
    def verdict(self) -> str:
        """"holds", "does not hold", or "not known to hold" (a candidate has one seed: its spread is not known)."""
        if self.single_seeded:
            return "not known to hold"
        return "holds" if self.holds else "does not hold"

    def pick_label(self, symbol: str = "τ") -> str:
        """A figure's label for the pick: "validated τ = 0.005" where it holds, else what validation picked and
        that it does not hold, or is not known to."""
        if self.verdict == "holds":
            return f"validated {symbol} = {self.pick:g}"
        return f"validation's pick {symbol} = {self.pick:g} ({self.verdict})"

    def summary(self, symbol: str = "τ") -> str:
        """One paragraph a reader can quote: the pick, its wins over seeds and resamples, and whether it holds."""
        wins = ", ".join(f"{symbol} {v:g}: {n}" for v, n in self.seed_wins.items() if n)
        boot = ", ".join(f"{symbol} {v:g}: {100 * f:.0f} %" for v, f in self.bootstrap.items() if f >= 0.005)
        seeds = sorted({s for ss in self.seeds.values() for s in ss})
        single = self.single_seeded
        count = len(self.seed_picks)
        if len(self.seeds) == 1:
            return (f"Only {symbol} = {self.pick:g} is trained so far (seeds {seeds}): nothing to choose between yet.")
        groups: dict[tuple, list[str]] = {}
        for value, own in self.seeds.items():
            groups.setdefault(tuple(sorted(own)), []).append(f"{value:g}")
        over = "; ".join(f"{symbol} {', '.join(values)}: seed{'s' if len(own) > 1 else ''} {', '.join(map(str, own))}"
                         for own, values in groups.items())
        text = (f"Validation picks {symbol} = {self.pick:g} (each candidate's mean over its seeds: {over}); seeds won alone "
                f"({count} seed{'s' if count != 1 else ''} every candidate has): {wins or 'none'}; bootstrap over seeds "
                f"({BOOTSTRAP_RESAMPLES:,} resamples): {boot}. ")
        if single:
            return text + f"Only one seed for {symbol} {', '.join(f'{v:g}' for v in single)}: whether the pick holds is not known."
        return text + ("The pick holds." if self.holds else "The pick does not hold: more seeds are needed.")


def pick_stability(runs: Mapping[str, Any], loss: str = "logitnorm", score: str = "msp",
                   resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> Stability:
    """The rule on the mean, on each seed alone, and on ``resamples`` bootstrap resamples in which each
    candidate's seeds are drawn with replacement (independently per candidate); ties of the AUROC go to
    the lower FPR95 on the mean and per seed."""
    table = seed_table(runs, loss, score)
    chosen = pick(runs, loss, score)
    common = sorted(set.intersection(*(set(g["seed"]) for _, g in table.groupby("value"))))
    seed_picks = {}
    for s in common:
        rows = table[table["seed"] == s].set_index("value")
        seed_picks[s] = float(min(rows.index, key=lambda v: (-rows.loc[v, "auroc"], rows.loc[v, "fpr95"])))
    rng = np.random.default_rng(seed)
    values = sorted(table["value"].unique())
    draws = np.stack([rng.choice(table.loc[table["value"] == v, "auroc"].to_numpy(),
                                 size=(resamples, int((table["value"] == v).sum()))).mean(1) for v in values])
    winners = draws.argmax(0)
    bootstrap = {float(v): float((winners == i).mean()) for i, v in enumerate(values)}
    seeds = {float(v): sorted(table.loc[table["value"] == v, "seed"].tolist()) for v in values}
    return Stability(chosen, seed_picks, bootstrap, seeds, table)


def stability_table(stability: Stability) -> pd.DataFrame:
    """One row per candidate: its seeds, the validation AUROC of each seed and their mean ± std, how many seeds
    it wins alone and its share of the bootstrap resamples (%), and whether it is the pick."""
    rows = []
    for value, group in stability.table.groupby("value"):
        row = {"value": value, "seeds": len(group), "val_auroc_mean": group["auroc"].mean(),
               "val_auroc_std": group["auroc"].std(), "seeds_won": stability.seed_wins.get(value, 0),
               "bootstrap_wins_%": 100 * stability.bootstrap.get(value, 0.0), "picked": value == stability.pick}
        row.update({f"seed {int(s)}": a for s, a in zip(group["seed"], group["auroc"])})
        rows.append(row)
    return pd.DataFrame(rows).set_index("value").round(2)


def choice_by_test_sets(runs: Mapping[str, Any], oods: Sequence[str], score: str = "msp") -> float:
    """The τ the *test* OOD sets would pick (highest mean AUROC over ``oods``): for comparison only."""
    labels = logitnorm_runs(runs)
    table = ood_table({label: runs[label] for label in labels.values()}, scores=[score], oods=oods)
    return max(labels, key=lambda t: table.loc["mean", (labels[t], score, "auroc", "mean")])


def tau_table(runs: Mapping[str, Any], oods: Sequence[str], score: str = "msp", n_bins: int = 15) -> pd.DataFrame:
    """One row per run (CE and each τ): accuracy, ECE (``ece``: the whole test set; ``ece_eval`` and
    ``ece_scaled``: the eval half before and after temperature scaling fitted on the other half,
    :mod:`lnlab.calibration`), validation AUROC / FPR95 and test AUROC / FPR95 per OOD set and their mean,
    in % (``_std`` columns: spread over seeds)."""
    from lnlab.calibration import calibrate
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
        calibrated = [calibrate(r.logits_for("test"), r.labels_for("test")) for r in members]
        raw = pd.Series([100 * c.ece(scaled=False, n_bins=n_bins) for c in calibrated])
        scaled = pd.Series([100 * c.ece(scaled=True, n_bins=n_bins) for c in calibrated])
        row = {"run": label, "tau": config.tau if config.loss == "logitnorm" else float("nan"), "seeds": len(members),
               "accuracy": accuracy.loc[label, "accuracy_mean"], "accuracy_std": accuracy.loc[label, "accuracy_std"],
               "ece": errs.mean(), "ece_std": errs.std(),
               "ece_eval": raw.mean(), "ece_eval_std": raw.std(), "ece_scaled": scaled.mean(),
               "ece_scaled_std": scaled.std(),
               "val_auroc": val.loc[label, ("auroc", "mean")], "val_auroc_std": val.loc[label, ("auroc", "std")],
               "val_fpr95": val.loc[label, ("fpr95", "mean")], "val_fpr95_std": val.loc[label, ("fpr95", "std")]}
        for ood in [*oods, "mean"]:
            for metric in ("auroc", "fpr95"):
                row[f"{ood}_{metric}"] = test.loc[ood, (label, score, metric, "mean")]
                row[f"{ood}_{metric}_std"] = test.loc[ood, (label, score, metric, "std")]
        rows.append(row)
    return pd.DataFrame(rows).set_index("run")


OPENOOD_CIFAR100 = ("OpenOOD v1.5 (leaderboard: ResNet-18, 100 epochs) trains CIFAR-100 with the CIFAR-10 value τ = 0.04 "
                    "and finds LogitNorm below cross-entropy on near-OOD (AUROC 78.47 vs 80.27) and above it on "
                    "far-OOD (81.53 vs 77.76); the official code's author recommends τ = 0.0085 for CIFAR-100, a value "
                    "that is not in the paper.")


def head_to_head(stability: Stability, a: float, b: float) -> str:
    """One sentence: on how many of the seeds both ``a`` and ``b`` have ``a``'s validation AUROC is the higher
    ("" without a per-seed table or a common seed)."""
    if stability.table is None:
        return ""
    by_seed = {v: dict(zip(g["seed"], g["auroc"])) for v, g in stability.table.groupby("value")}
    common = sorted(set(by_seed.get(a, {})) & set(by_seed.get(b, {})))
    if not common:
        return ""
    wins = sum(by_seed[a][s] > by_seed[b][s] for s in common)
    seeds = ", ".join(str(int(s)) for s in common)
    return (f"Seed by seed (the seeds both have: {seeds}), τ = {a:g} is the higher on validation at {wins} of "
            f"{len(common)}. ")


def describe_transfer(studies: Mapping[str, tuple[pd.DataFrame, Stability]], oods: Mapping[str, Sequence[str]],
                      reference_tau: float = 0.04, decimals: int = 1) -> str:
    """Markdown: for each training set (``{name: (tau_table, Stability)}``), the validated τ and whether it holds,
    the validation AUROC at that τ and at ``reference_tau`` (mean ± std over seeds, and whether the two differ by
    more than the larger std), and the test MSP AUROC of CE, ``reference_tau`` and the pick on each OOD set of
    ``oods[name]``; then OpenOOD's CIFAR-100 finding (:data:`OPENOOD_CIFAR100`, cited, not measured here).
    Every number is read from the tables."""
    from lnlab.tables import cell

    def at(table: pd.DataFrame, tau: float | None, column: str) -> str:
        row = table[table["tau"].isna()] if tau is None else table[table["tau"] == tau]
        if row.empty:
            return "not trained"
        return cell(float(row[column].iloc[0]), float(row.get(f"{column}_std", pd.Series([float("nan")])).iloc[0]),
                    decimals)

    paragraphs = []
    for name, (table, stability) in studies.items():
        pick_row, ref_row = table[table["tau"] == stability.pick], table[table["tau"] == reference_tau]
        text = f"**{name}.** {stability.summary()} "
        if not ref_row.empty and stability.pick != reference_tau:
            gap = float(pick_row["val_auroc"].iloc[0]) - float(ref_row["val_auroc"].iloc[0])
            stds = {stability.pick: float(pick_row["val_auroc_std"].iloc[0]),
                    reference_tau: float(ref_row["val_auroc_std"].iloc[0])}
            known = {t: v for t, v in stds.items() if np.isfinite(v)}
            spread = max(known.values(), default=float("nan"))
            size = "no larger than" if abs(gap) <= spread else "larger than"
            if len(known) == 2:
                verdict = f"{size} the larger std over seeds ({spread:.{decimals}f})"
            elif known:
                (several, std), = known.items()
                single = next(t for t in stds if t != several)
                verdict = (f"{size} the std over seeds at τ = {several:g} ({std:.{decimals}f}); τ = {single:g} has one "
                           "seed, so its own spread is not known")
            else:
                verdict = "with one seed at each, so the spread is not known"
            text += (f"Validation MSP AUROC {at(table, stability.pick, 'val_auroc')} % at τ = {stability.pick:g} "
                     f"against {at(table, reference_tau, 'val_auroc')} % at τ = {reference_tau:g}: a gap of "
                     f"{gap:.{decimals}f} points, {verdict}. ")
            text += head_to_head(stability, stability.pick, reference_tau)
        elif stability.pick == reference_tau and len(stability.seeds) > 1:
            text += f"Validation picks τ = {reference_tau:g} itself. "
        shown = list(dict.fromkeys([reference_tau, stability.pick]))
        if table["tau"].isna().any():  # CE: the baseline every τ is measured against
            text += (f"CE's validation MSP AUROC is {at(table, None, 'val_auroc')} %; "
                     + ", ".join(f"τ = {t:g}: {at(table, t, 'val_auroc')} %" for t in shown) + ". ")
        sets = [f"{ood}: CE {at(table, None, f'{ood}_auroc')}, "
                + ", ".join(f"τ = {t:g} {at(table, t, f'{ood}_auroc')}" for t in shown) for ood in oods[name]]
        text += "Test MSP AUROC (%) — " + "; ".join(sets) + "."
        paragraphs.append(text)
    return "\n\n".join(paragraphs + [f"For comparison (cited, not measured here): {OPENOOD_CIFAR100}"])
