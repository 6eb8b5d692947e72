"""Readable figures: no two texts of a figure (tick labels, axis titles, panel titles, legend texts, the
figure's title) overlap, measured on matplotlib's own text bounding boxes after drawing.

``text_overlaps(fig)`` lists the overlapping pairs; ``lnlab.plots.save_figure`` checks every figure it writes
and, with ``$LNLAB_STRICT_LAYOUT=1`` (the suite's layout test), refuses to write one that has any.
"""

from __future__ import annotations

import json
import os
from itertools import combinations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

STRICT_ENV = "LNLAB_STRICT_LAYOUT"
REPORT_ENV = "LNLAB_LAYOUT_REPORT"
TOLERANCE_PX = 0.5  # boxes that only touch (anti-aliasing, rounding) do not count


class OverlappingTextError(ValueError):
    """A figure has overlapping texts; the message names them."""


def _texts(fig: Figure) -> list[tuple[str, Text]]:
    """(where, text) of every visible, non-empty text the check covers."""
    found: list[tuple[str, Text]] = []
    for i, ax in enumerate(fig.axes):
        if not ax.get_visible():
            continue
        where = f"panel {i}" + (f" ({ax.get_title()})" if ax.get_title() else "")
        for name, axis, (low, high) in (("x", ax.xaxis, ax.get_xlim()), ("y", ax.yaxis, ax.get_ylim())):
            if not ax.axison or not axis.get_visible():  # ax.axis("off") (a legend panel): ticks and labels not drawn
                continue
            low, high = min(low, high), max(low, high)
            slack = 1e-9 * max(abs(low), abs(high), 1e-300)
            ticks = axis.get_majorticklabels() + axis.get_minorticklabels()
            found += [(f"{where} {name} tick", t) for t in ticks  # labels of ticks outside the view are not drawn
                      if low - slack <= t.get_position()[0 if name == "x" else 1] <= high + slack]
        found += [(f"{where} {n} label", axis.label) for n, axis in (("x", ax.xaxis), ("y", ax.yaxis))
                  if ax.axison and axis.get_visible()]
        found += [(f"{where} title", title) for title in (ax.title, ax._left_title, ax._right_title)]
        legend = ax.get_legend()
        if legend is not None and legend.get_visible():
            found += [(f"{where} legend", t) for t in [*legend.get_texts(), legend.get_title()]]
    for legend in fig.legends:
        found += [("figure legend", t) for t in [*legend.get_texts(), legend.get_title()]]
    for where, text in (("figure title", fig._suptitle), ("figure x label", fig._supxlabel),
                        ("figure y label", fig._supylabel)):
        if text is not None:
            found.append((where, text))
    return [(where, t) for where, t in found if t.get_visible() and t.get_text().strip()]


def text_overlaps(fig: Figure) -> list[str]:
    """Every pair of overlapping texts of ``fig``, as ``"'a' (where) / 'b' (where)"`` lines (empty: none)."""
    original = fig.canvas
    canvas = FigureCanvasAgg(fig)  # a pyplot-free figure has no renderer of its own
    try:
        canvas.draw()
        renderer = canvas.get_renderer()
        boxes = _boxes(fig, renderer)
    finally:
        fig.set_canvas(original)
    problems = []
    for (w1, t1, b1), (w2, t2, b2) in combinations(boxes, 2):
        if b1.overlaps(b2):
            problems.append(f"{t1!r} ({w1}) / {t2!r} ({w2})")
    return problems


def _boxes(fig: Figure, renderer) -> list:
    boxes = []
    for where, text in _texts(fig):
        box = text.get_window_extent(renderer)
        if box.width > 0 and box.height > 0:
            boxes.append((where, text.get_text(), box.padded(-TOLERANCE_PX)))
    return boxes


def check_layout(fig: Figure, name: str) -> None:
    """With ``$LNLAB_STRICT_LAYOUT=1``, :class:`OverlappingTextError` if ``fig`` has overlapping texts; with
    ``$LNLAB_LAYOUT_REPORT=<file>``, one JSON line per figure with its overlaps appended to that file instead."""
    report = os.environ.get(REPORT_ENV)
    if os.environ.get(STRICT_ENV) != "1" and not report:
        return
    problems = text_overlaps(fig)
    if report:
        with open(report, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"figure": name, "overlaps": problems}) + "\n")
        return
    if problems:
        raise OverlappingTextError(f"figure {name!r} has overlapping texts: " + "; ".join(problems[:8])
                                   + (f"; and {len(problems) - 8} more" if len(problems) > 8 else ""))
