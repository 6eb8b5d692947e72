"""Figures of τ studies: metrics against τ with the validated pick and each seed's pick (notebook 04), and the
same for two numbers of classes side by side (notebook 07). Wei et al., ICML 2022 (arXiv 2205.09310v2),
Sec. 5.1 (τ chosen on validation data) and Prop. 3 (the loss floor depends on τ and on k).

The τ axis is logarithmic with a tick at each τ studied, labelled as the number it is ("0.005", "0.04"), and
no minor labels, so that no two tick labels overlap (:mod:`lnlab.layout`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from lnlab.plots import DOUBLE_COLUMN, add_subtitle, colors, new_figure, paper_style

SEED_MARKERS = ("v", "^", "<", ">", "D", "P", "X")


def tau_axis(ax: Axes, taus: Sequence[float], label: str = "temperature τ") -> None:
    """Log x axis with one tick per τ, labelled plainly ("0.005"), no minor tick labels; the labels stand
    vertically where there are six or more τ or two within a factor 1.9."""
    taus = sorted({float(t) for t in taus})
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(taus))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    if taus:
        ax.set_xlim(taus[0] / 1.35, taus[-1] * 1.35)
    crowded = len(taus) >= 6 or any(b / a < 1.9 for a, b in zip(taus, taus[1:]))
    if crowded:  # six or more τ, or two close ones: upright labels would print on top of each other
        ax.tick_params(axis="x", labelrotation=90)
    ax.set_xlabel(label)


def _ce_line(ax: Axes, ce: pd.DataFrame, column: str, color: Any) -> None:
    if not ce.empty and column in ce and np.isfinite(float(ce[column].iloc[0])):
        ax.axhline(float(ce[column].iloc[0]), color=color, linestyle="--", linewidth=0.8)


def _errorbar(ax: Axes, frame: pd.DataFrame, column: str, color: Any, label: str | None = None,
              linestyle: str = "-", linewidth: float = 1.4) -> None:
    std = frame[f"{column}_std"].fillna(0) if f"{column}_std" in frame else 0
    ax.errorbar(frame["tau"], frame[column], yerr=std, color=color, marker="o", markersize=3, linewidth=linewidth,
                linestyle=linestyle, capsize=2, label=label)


def _seed_picks(ax: Axes, seeds: pd.DataFrame | None, picks: Mapping[int, float] | None) -> list[Line2D]:
    """Each seed's validation AUROC (small dots) and the τ each seed alone would pick (a marker at the top)."""
    handles = []
    if seeds is not None and not seeds.empty:
        ax.scatter(seeds["value"], seeds["auroc"], s=7, color="0.55", zorder=3, linewidths=0)
        handles.append(Line2D([], [], color="0.55", marker="o", markersize=3, linestyle="", label="one seed"))
    if picks:
        top = ax.get_ylim()[1]
        for i, (seed, value) in enumerate(sorted(picks.items())):
            marker = SEED_MARKERS[i % len(SEED_MARKERS)]
            ax.plot([value], [top], marker=marker, color="black", markersize=4, clip_on=False, zorder=4,
                    markerfacecolor="white" if i % 2 else "black", linestyle="")
            handles.append(Line2D([], [], marker=marker, color="black", markersize=4, linestyle="",
                                  markerfacecolor="white" if i % 2 else "black", label=f"seed {seed}'s pick"))
        ax.set_ylim(top=top)
    return handles


def plot_tau_study(table: pd.DataFrame, oods: Sequence[str], chosen: float | None = None,
                   by_test: float | None = None, seeds: pd.DataFrame | None = None,
                   seed_picks: Mapping[int, float] | None = None, subtitle: str | None = None,
                   width: float = DOUBLE_COLUMN) -> Figure:
    """Accuracy, ECE (raw and after temperature scaling), validation AUROC and test AUROC / FPR95 against τ.

    ``table``: :func:`lnlab.tau.tau_table` (one row per run, mean over seeds; ``_std`` columns are the error
    bars, sample std over seeds); CE is a dashed line in each colour. ``chosen`` marks the τ picked on
    validation data (solid line), ``by_test`` the τ the test OOD sets would pick (dotted), for comparison;
    ``seeds`` (:func:`lnlab.tau.seed_table`) draws each seed's validation AUROC, ``seed_picks`` (seed → τ,
    :attr:`lnlab.tau.Stability.seed_picks`) the τ each seed alone picks. ``subtitle``: dataset, recipe, seeds.
    """
    ln = table[table["tau"].notna()].sort_values("tau")
    ce = table[table["tau"].isna()]
    taus = ln["tau"].tolist()
    with paper_style():
        fig, axes = new_figure(3, 2, width=width, height=4.8)
        ax_acc, ax_ece, ax_val, ax_auroc, ax_fpr, ax_legend = axes.flat
        _errorbar(ax_acc, ln, "accuracy", "black")
        _ce_line(ax_acc, ce, "accuracy", "black")
        ax_acc.set(ylabel="%", title="ID test accuracy")
        ece_pairs = [("ece_eval", "raw logits", "-"), ("ece_scaled", "after temperature scaling", ":")]
        for column, label, style in ece_pairs if "ece_scaled" in ln else [("ece", "raw logits", "-")]:
            _errorbar(ax_ece, ln, column, "black", label, linestyle=style)
            _ce_line(ax_ece, ce, column, "0.4")
        ax_ece.set(ylabel="%", title="ECE, 15 bins (eval half)" if "ece_scaled" in ln else "ECE, 15 bins")
        ax_ece.legend(loc="center right", frameon=False)
        _errorbar(ax_val, ln, "val_auroc", "black")
        _ce_line(ax_val, ce, "val_auroc", "black")
        ax_val.set(ylabel="%", title="validation AUROC of MSP")
        seed_handles = _seed_picks(ax_val, seeds, seed_picks)
        palette = colors(len(oods) + 1)
        for ax, metric, title in ((ax_auroc, "auroc", "test AUROC of MSP"), (ax_fpr, "fpr95", "test FPR95 of MSP ↓")):
            for ood, color in zip([*oods, "mean"], palette):
                _errorbar(ax, ln, f"{ood}_{metric}", color, ood, linewidth=2.0 if ood == "mean" else 1.0)
                _ce_line(ax, ce, f"{ood}_{metric}", color)
            ax.set(ylabel="%", title=title)
        for ax in (ax_acc, ax_ece, ax_val, ax_auroc, ax_fpr):
            tau_axis(ax, taus)
            for tau, style in ((chosen, "-"), (by_test, ":")):
                if tau is not None:
                    ax.axvline(tau, color="0.3", linestyle=style, linewidth=1.0)
        handles, _ = ax_auroc.get_legend_handles_labels()
        handles += [Line2D([], [], color="0.3", linestyle="--", label="CE (no τ), same colour"),
                    Line2D([], [], color="0.3", label="τ picked on validation" + (f" ({chosen:g})" if chosen else "")),
                    Line2D([], [], color="0.3", linestyle=":",
                           label="τ the test sets would pick" + (f" ({by_test:g})" if by_test else "")),
                    *seed_handles]
        ax_legend.axis("off")
        ax_legend.legend(handles=handles, loc="center", frameon=False, title="OOD set (test panels)", ncols=1)
        add_subtitle(fig, subtitle)
    return fig


def plot_tau_and_classes(studies: Mapping[str, pd.DataFrame], oods: Mapping[str, Sequence[str]],
                         chosen: Mapping[str, float], subtitles: Mapping[str, str] | None = None,
                         width: float = DOUBLE_COLUMN) -> Figure:
    """One row per training set (e.g. ``{"CIFAR-10 (k = 10)": table, "Tiny ImageNet-100 (k = 100)": table}``):
    validation AUROC, test AUROC and test FPR95 of MSP against τ (mean ± std over seeds, CE dashed), the τ
    each set's validation picks marked (``chosen``). ``studies``: :func:`lnlab.tau.tau_table` per set;
    ``oods``: the test OOD sets per set; ``subtitles``: the recipe and seeds of each row."""
    rows = list(studies)
    with paper_style():
        fig, axes = new_figure(3, len(rows), width=width, height=2.2 * len(rows) + 0.5)
        for r, name in enumerate(rows):
            table = studies[name]
            ln, ce = table[table["tau"].notna()].sort_values("tau"), table[table["tau"].isna()]
            ax_val, ax_auroc, ax_fpr = axes[r]
            _errorbar(ax_val, ln, "val_auroc", "black")
            _ce_line(ax_val, ce, "val_auroc", "black")
            palette = colors(len(oods[name]) + 1)
            for ax, metric in ((ax_auroc, "auroc"), (ax_fpr, "fpr95")):
                for ood, color in zip([*oods[name], "mean"], palette):
                    _errorbar(ax, ln, f"{ood}_{metric}", color, ood, linewidth=2.0 if ood == "mean" else 1.0)
                    _ce_line(ax, ce, f"{ood}_{metric}", color)
            ax_val.set(ylabel=f"{name}\n%", title="validation AUROC of MSP")
            ax_auroc.set(ylabel="%", title="test AUROC of MSP")
            ax_fpr.set(ylabel="%", title="test FPR95 of MSP ↓")
            for ax in axes[r]:
                tau_axis(ax, ln["tau"].tolist())
                if name in chosen:
                    ax.axvline(chosen[name], color="0.3", linewidth=1.0)
            ax_fpr.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, title=f"OOD set\n(k = "
                          f"{_k(name)})" if _k(name) else "OOD set")
        handles = [Line2D([], [], color="0.3", linestyle="--", label="CE (no τ), same colour"),
                   Line2D([], [], color="0.3", label="τ picked on each set's validation data")]
        fig.legend(handles=handles, loc="outside lower center", ncols=2, frameon=False)
        if subtitles:
            add_subtitle(fig, "\n".join(dict.fromkeys(subtitles.values())))  # one line per training set
    return fig


def _k(name: str) -> str | None:
    """The class count written in a row name such as ``"CIFAR-10 (k = 10)"``."""
    return name.rsplit("k = ", 1)[1].rstrip(")") if "k = " in name else None


def plot_norm_against_tau(histories: Mapping[str, Mapping[float, Any]], width: float = DOUBLE_COLUMN) -> Figure:
    """The final mean raw logit norm ‖f‖ of training images against τ, one line per training set, with the
    normalised norm ‖f / (τ‖f‖)‖ = 1/τ that LogitNorm's loss sees (paper Eq. 6) for reference.

    ``histories``: ``{set name: {τ: Run or Seeds}}``; a run's last history row gives ‖f‖ (mean over seeds)."""
    from lnlab.evaluate import runs_of

    with paper_style():
        fig, axes = new_figure(2, 1, width=width, height=2.4)
        ax_raw, ax_ratio = axes.flat
        palette = colors(len(histories))
        all_taus: set[float] = set()
        for (name, by_tau), color in zip(histories.items(), palette):
            taus = sorted(by_tau)
            all_taus |= set(taus)
            raw = [np.mean([r.history[-1]["norm_train_mean"] for r in runs_of(by_tau[t])]) for t in taus]
            ax_raw.plot(taus, raw, color=color, marker="o", markersize=3, label=name)
            ax_ratio.plot(taus, [1 / (t * n) for t, n in zip(taus, raw)], color=color, marker="o", markersize=3,
                          label=name)
        grid = np.array(sorted(all_taus))
        ax_raw.plot(grid, 1 / grid, color="0.4", linestyle="--", label="normalised: 1/τ")
        ax_raw.set(yscale="log", ylabel="mean ‖f‖ (train images, last epoch)", title="raw vs normalised logit norm")
        ax_ratio.axhline(1.0, color="0.4", linestyle="--", linewidth=0.8)
        ax_ratio.set(yscale="log", ylabel="1/(τ‖f‖): factor the loss applies",
                     title="how much LogitNorm rescales the raw logits")
        for ax in axes.flat:
            tau_axis(ax, sorted(all_taus))
        ax_raw.legend(frameon=False, loc="upper right")
    return fig


__all__ = ["plot_tau_study", "plot_tau_and_classes", "plot_norm_against_tau", "tau_axis"]
