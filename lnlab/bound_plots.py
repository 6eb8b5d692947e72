"""The figure of Prop. 3 (Wei et al., ICML 2022, arXiv 2205.09310v2): LogitNorm's loss floor and the softmax
confidence it allows, against τ, one colour per number of classes k, with runs' final training losses and the
chosen τ drawn on it (notebooks 03 and 07, the bound explorer). Style and figure helpers: :mod:`lnlab.plots`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from lnlab.plots import DOUBLE_COLUMN, add_subtitle, colors, new_figure, paper_style, wrap_subtitle


def default_taus() -> np.ndarray:
    """τ grid for the bound figure: 0.01 … 1 on a log scale."""
    return np.logspace(-2, 0, 200)


def plot_lower_bound(taus: Sequence[float] | np.ndarray | None = None, ks: Sequence[int] = (10, 100, 1000),
                     points: pd.DataFrame | Sequence[Mapping[str, Any]] | None = None,
                     marker: tuple[float, int] | None = None, y_floor: float = 1e-12,
                     width: float = DOUBLE_COLUMN, markers: Sequence[tuple] = (), subtitle: str | None = None) -> Figure:
    """LogitNorm's loss floor and the confidence it allows, vs τ (paper Prop. 3).

    Left: ``lower_bound`` (dashed, Prop. 3: gap 2) and ``tight_lower_bound`` (solid, unit-norm
    simplex: gap ``sqrt(k/(k-1))``) on log–log axes, one colour per class count ``k``.
    Right: the highest softmax confidence reachable at that optimum, ``1 / (1 + (k-1) e^{-gap/τ})``:
    a large τ caps confidence far below 1, the more so the more classes there are.
    ``points`` (columns ``tau``, ``num_classes``, ``loss``) draws final train losses of runs
    against their bound; ``marker=(tau, k)`` highlights one point on both panels (the explorer moves it);
    ``markers``: more points ``(tau, k[, legend text])`` in the colour of their ``k``, e.g. each training set's
    validated τ (notebook 07). ``subtitle``: the dataset, recipe and seeds of the runs drawn
    (:func:`lnlab.plots.recipe_line`).
    """
    from lnlab.losses import confidence_cap, lower_bound, tight_lower_bound

    if taus is None:  # 0.01 … 1, reaching down to the smallest τ of a run or marker drawn on it
        shown = [float(m[0]) for m in markers] + ([float(marker[0])] if marker is not None else [])
        if points is not None:
            shown += [float(row["tau"]) for row in (points.to_dict("records") if isinstance(points, pd.DataFrame)
                                                    else points)]
        low = min([0.01, *shown])
        taus = default_taus() if low >= 0.01 else np.logspace(np.log10(low) - 0.1, 0, 200)
    taus = np.asarray(taus, dtype=np.float64)
    ks = list(ks)
    if not ks:
        raise ValueError("ks is empty: pass class counts such as (10, 100, 1000)")
    with paper_style():
        lines = wrap_subtitle(subtitle, width).count("\n") + 1 if subtitle else 0
        fig, axes = new_figure(2, 1, width=width, height=2.5 + (0.05 + 0.13 * lines if lines else 0))  # panels keep their height
        ax_bound, ax_cap = axes.flat
        palette = dict(zip(ks, colors(len(ks))))
        for k in ks:
            c = palette[k]
            ax_bound.plot(taus, _above(tight_lower_bound(taus, k), y_floor), color=c, label=f"k={k}")
            ax_bound.plot(taus, _above(lower_bound(taus, k), y_floor), color=c, linestyle="--")
            ax_cap.plot(taus, confidence_cap(taus, k, tight=True), color=c)
            ax_cap.plot(taus, confidence_cap(taus, k, tight=False), color=c, linestyle="--")
        # the τ range padded by 25 % so that the first x tick label leaves the corner to the y tick labels
        xlim = (taus.min() / 1.25, taus.max() * 1.25)
        ax_bound.set(xscale="log", yscale="log", xlim=xlim, ylim=(y_floor, None),
                     xlabel="temperature τ (unitless)",
                     ylabel="min. LogitNorm loss (nats)", title="loss floor vs τ")
        ax_cap.set(xscale="log", xlim=xlim, ylim=(0, 1.03), xlabel="temperature τ (unitless)",
                   ylabel="max. softmax confidence\n(probability)", title="confidence cap at the optimum")
        handles = ax_bound.get_legend_handles_labels()[0]
        handles += [Line2D([], [], color="0.3", label="tight bound (simplex)"),
                    Line2D([], [], color="0.3", linestyle="--", label="Prop. 3 bound")]
        if points is not None and _draw_run_points(ax_bound, points, palette, y_floor):
            handles.append(Line2D([], [], color="0.5", marker="o", markeredgecolor="black", linestyle=":",
                                  label="run: final train loss (dotted: gap to bound)"))
        for extra in markers:
            tau, k, text = (*extra, None)[:3]
            _draw_marker(ax_bound, ax_cap, tau, k, color=palette.get(k, "black"), symbol="P")
            handles.append(Line2D([], [], color=palette.get(k, "black"), marker="P", markersize=7, linestyle="",
                                  label=text or f"τ={tau:.3g}, k={k}"))
        if marker is not None:
            _draw_marker(ax_bound, ax_cap, *marker)
            handles.append(Line2D([], [], color="black", marker="*", markersize=9, linestyle="",
                                  label=f"τ={marker[0]:.3g}, k={marker[1]}"))
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4), frameon=False,
                   columnspacing=1.2, handlelength=1.8)
        add_subtitle(fig, subtitle)
    return fig


def _above(values: np.ndarray, floor: float) -> np.ndarray:
    """Values below ``floor`` become NaN (not drawn) instead of a flat line at the axis limit."""
    values = np.asarray(values, dtype=np.float64)
    return np.where(values >= floor, values, np.nan)


def _draw_run_points(ax: Axes, points: pd.DataFrame | Sequence[Mapping[str, Any]],
                     palette: Mapping[int, Any], y_floor: float) -> bool:
    """Draw each run's ``(tau, loss)`` point, coloured by class count, with a dotted segment down to
    its attainable bound (the part of the loss training could still remove); return whether any
    point was drawn. The points' labels are left to the table the notebook prints."""
    from lnlab.losses import tight_lower_bound

    frame = points if isinstance(points, pd.DataFrame) else pd.DataFrame(list(points))
    if frame.empty:
        return False
    missing = {"tau", "num_classes", "loss"} - set(frame.columns)
    if missing:
        raise ValueError(f"points need columns tau, num_classes, loss; missing {sorted(missing)}")
    for row in frame.itertuples(index=False):
        color = palette.get(int(row.num_classes), "0.2")
        bound = max(float(tight_lower_bound(row.tau, int(row.num_classes))), y_floor)
        ax.plot([row.tau, row.tau], [bound, row.loss], color=color, linewidth=0.8, linestyle=":")
        ax.plot([row.tau], [row.loss], marker="o", color=color, markeredgecolor="black", linestyle="")
    return True


def _draw_marker(ax_bound: Axes, ax_cap: Axes, tau: float, k: int, color: Any = "black", symbol: str = "*") -> None:
    from lnlab.losses import confidence_cap, tight_lower_bound

    size = 11 if symbol == "*" else 8
    ax_bound.plot([tau], [float(tight_lower_bound(tau, k))], marker=symbol, markersize=size, color=color,
                  markeredgecolor="black", linestyle="", zorder=5)
    ax_cap.plot([tau], [float(confidence_cap(tau, k, tight=True))], marker=symbol, markersize=size, color=color,
                markeredgecolor="black", linestyle="", zorder=5)
    for ax in (ax_bound, ax_cap):
        ax.axvline(tau, color="0.4", linewidth=0.8, linestyle=":")
