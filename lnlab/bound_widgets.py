"""The bound explorer of notebook 03: sliders for τ and the class count k move a star along Prop. 3's curves.

An :class:`lnlab.explorer.Explorer` like those of :mod:`lnlab.widgets`; it draws
:func:`lnlab.bound_plots.plot_lower_bound` once and then moves the star in place (no new figure per value).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import ipywidgets as W
import numpy as np
from matplotlib.figure import Figure

from lnlab import bound_plots
from lnlab.explorer import Explorer
from lnlab.formatting import format_number, format_probability


def bound_explorer(tau: float = 0.04, k: int = 10, ks: Sequence[int] = (10, 100, 1000),
                   points: Any = None, tau_range: tuple[float, float] = (0.005, 1.0)) -> Explorer:
    """Sliders for τ and the class count k: a star moves along the bound curves (paper Prop. 3).

    The text gives ``lower_bound(τ, k)`` (Prop. 3), ``tight_lower_bound(τ, k)`` and the confidence
    cap ``1 / (1 + (k-1) e^{-gap/τ})``; ``state`` holds the same numbers unrounded.
    ``points`` (runs' final train losses) is passed on to :func:`lnlab.bound_plots.plot_lower_bound`.
    """
    from lnlab.losses import confidence_cap, lower_bound, tight_lower_bound

    controls = {
        "tau": W.FloatLogSlider(value=tau, base=10, min=math.log10(tau_range[0]), max=math.log10(tau_range[1]),
                                step=0.01, description="τ", readout_format=".3g"),
        "k": W.IntSlider(value=k, min=2, max=1000, description="classes k"),
    }
    shown: dict[str, Any] = {}  # the figure and the marker it shows

    def render(values: dict[str, Any]) -> tuple[Figure, str, dict[str, Any]]:
        t, n = float(values["tau"]), int(values["k"])
        numbers = {
            "lower_bound": float(lower_bound(t, n)),
            "tight_lower_bound": float(tight_lower_bound(t, n)),
            "confidence_cap": float(confidence_cap(t, n, tight=True)),
            "confidence_cap_prop3": float(confidence_cap(t, n, tight=False)),
        }
        # 1 - cap = 1 - e^(-bound), accurate where the cap itself rounds to 1.0 (small τ)
        numbers["confidence_cap_complement"] = -math.expm1(-numbers["tight_lower_bound"])
        fig = shown.get("figure")
        if fig is None or not _move_bound_marker(fig, shown["marker"], (t, n)):
            fig = bound_plots.plot_lower_bound(ks=ks, points=points, marker=(t, n))
        shown.update(figure=fig, marker=(t, n))
        cap = format_probability(numbers["confidence_cap"], numbers["confidence_cap_complement"])
        text = (f"τ = {t:.4g}, k = {n}\n"
                f"  Prop. 3 lower bound     log(1+(k-1)e^(-2/τ))      = {format_number(numbers['lower_bound'])} nats\n"
                f"  tight bound (simplex)   log(1+(k-1)e^(-gap/τ))    = {format_number(numbers['tight_lower_bound'])} nats\n"
                f"  confidence cap (tight)  1/(1+(k-1)e^(-gap/τ))     = {cap}\n"
                f"  (gap = √(k/(k-1)) = {(n / (n - 1)) ** 0.5:.4f}, the unit-norm simplex optimum)")
        return fig, text, numbers

    return Explorer(controls, render, title="Bound explorer: LogitNorm's loss floor and confidence cap")


def _move_bound_marker(fig: Figure, old: tuple[float, int], new: tuple[float, int]) -> bool:
    """Move the star of a :func:`lnlab.bound_plots.plot_lower_bound` figure (``marker=old``) to ``new``, in place:
    the stars, the dotted vertical lines and the legend entry. False if the figure is not that shape."""
    from lnlab.losses import confidence_cap, tight_lower_bound

    if len(fig.axes) != 2:
        return False
    old_label, (tau, k) = _marker_label(*old), new
    stars, rules = [], []
    for ax in fig.axes:
        stars += [line for line in ax.get_lines() if line.get_marker() == "*"]
        rules += [line for line in ax.get_lines() if line.get_marker() != "*" and len(line.get_xdata()) == 2
                  and np.allclose(np.asarray(line.get_xdata(), dtype=float), old[0]) and line.get_ydata()[0] == 0
                  and line.get_ydata()[1] == 1]
    texts = [t for leg in fig.legends for t in leg.get_texts() if t.get_text() == old_label]
    if len(stars) != 2 or len(rules) != 2 or len(texts) != 1:
        return False
    stars[0].set_data([tau], [float(tight_lower_bound(tau, k))])
    stars[1].set_data([tau], [float(confidence_cap(tau, k, tight=True))])
    for rule in rules:
        rule.set_xdata([tau, tau])
    texts[0].set_text(_marker_label(tau, k))
    fig.stale = True
    return True


def _marker_label(tau: float, k: int) -> str:
    """The legend entry of the bound figure's star (as :func:`lnlab.bound_plots.plot_lower_bound` writes it)."""
    return f"τ={tau:.3g}, k={k}"
