"""Watch the logit norm grow while a network trains (paper Sec. 3, Fig. 2), updated in place.

``LiveNormView(["CE", "LogitNorm τ=0.04"])`` owns one figure: a panel per run, side by side on a
shared log y axis, each with the mean raw logit norm ``‖f(x)‖₂`` per epoch on the un-augmented
training subset, the ID test set and one OOD set, and the run's epoch and test accuracy in its title.

- ``view.callback_for(label, epochs)`` is a :func:`lnlab.train.train` callback: after every epoch it
  appends the row to the panel's lines (``Line2D.set_data``, then autoscale) and redraws once.
- ``view.show_history(label, history)`` draws a finished (cached or reference) run at once.
- ``view.get_run(config, **kwargs)`` is :func:`lnlab.runs.get_run` with both: the panel follows the run
  while it trains and shows its whole history when it is returned (``suite.comparison_runs(live=True)``).
- ``view.show()`` displays the figure; in a notebook it is then replaced in place after every redraw
  (an IPython ``display_id``, not a widget: papermill keeps the last picture in the executed notebook).

A redraw renders one PNG at a low ``dpi`` (about 0.1 s; an epoch takes seconds). Outside an IPython
kernel (plain Python, tests) nothing is rendered unless ``render=True``: a callback then costs
microseconds. ``view.redraws`` counts the PNGs rendered, ``view.png`` is the last one.
"""

from __future__ import annotations

import io
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.ticker import LogFormatter, MaxNLocator

from lnlab import plots
from lnlab.config import ID_SET_NAMES
from lnlab.splits import TRACKED_OOD, VALIDATION_OOD_SETS

__all__ = ["LiveNormView", "in_kernel"]

SPLITS = ("train", "test", "ood")  # the three lines of a panel; "ood" stands for the view's OOD set
PANEL_WIDTH = 3.5  # inches per run
HEIGHT = 2.7


def in_kernel() -> bool:
    """Whether this code runs in an IPython kernel (Jupyter, papermill), where a display can be updated."""
    ipython = sys.modules.get("IPython")  # not imported: certainly no kernel (and no import cost)
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


class _Panel:
    """One run's axes: three lines and the epochs / means they show."""

    def __init__(self, ax: Any, label: str, lines: dict[str, Any]) -> None:
        self.ax, self.label, self.lines = ax, label, lines
        self.epochs: list[int] = []
        self.means: dict[str, list[float]] = {split: [] for split in SPLITS}
        self.total: int | None = None
        self.seed: int | None = None

    def clear(self, total: int | None, seed: int | None) -> None:
        self.epochs.clear()
        for values in self.means.values():
            values.clear()
        self.total, self.seed = total, seed

    def add(self, row: Mapping[str, Any], ood: str) -> None:
        self.epochs.append(int(row["epoch"]))
        for split in SPLITS:
            self.means[split].append(float(row.get(f"norm_{ood if split == 'ood' else split}_mean", math.nan)))

    def draw(self, status: str) -> None:
        for split, line in self.lines.items():
            line.set_data(self.epochs, self.means[split])
        seed = "" if self.seed is None else f" (seed {self.seed})"
        self.ax.set_title(f"{self.label}{seed}\n{status}")
        last = max(self.total or 0, self.epochs[-1] if self.epochs else 1)
        self.ax.set_xlim(0.5, last + 0.5)  # during training the lines grow from left to right


class LiveNormView:
    """Mean logit norm per epoch of a few runs, one panel each, redrawn after every epoch (module docstring).

    ``labels``: the runs' labels, in panel order (CE first). ``ood``: the OOD set drawn (default: the
    first history's first OOD set, in ``lnlab.splits.TRACKED_OOD`` order). ``epochs``: the x axis until a
    run says its length. ``dpi``: of the PNGs (80: about 560 pixels wide for two runs).
    ``render``: render PNGs (default: only in an IPython kernel).
    """

    def __init__(self, labels: Sequence[str], ood: str | None = None, epochs: int | None = None, dpi: int = 80,
                 render: bool | None = None) -> None:
        labels = list(dict.fromkeys(labels))
        if not labels:
            raise ValueError("pass the runs' labels, e.g. LiveNormView(['CE', 'LogitNorm τ=0.04'])")
        self.ood = ood
        self.dpi = dpi
        self.render = in_kernel() if render is None else bool(render)
        self.redraws = 0
        self.redraw_seconds = math.nan  # how long the last PNG took
        self.png: bytes | None = None
        self._handle: Any = None
        with plots.paper_style():
            self.figure, axes = plots.new_figure(len(labels), 1, width=PANEL_WIDTH * len(labels), height=HEIGHT,
                                                 sharey=True)
            colors = plots.colors(len(SPLITS))
            self._panels: dict[str, _Panel] = {}
            for ax, label in zip(axes.flat, labels):
                lines = {split: ax.plot([], [], color=color, marker=".", markersize=4,
                                        label=self._split_title(split))[0] for split, color in zip(SPLITS, colors)}
                ax.set_yscale("log")
                ax.yaxis.set_major_formatter(LogFormatter())  # 3, 20, 100: not 3×10⁰, 2×10¹, 10²
                ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))
                ax.set_ylim(1, 10, auto=True)  # until there is data (autoscale stays on)
                ax.set_xlabel("epoch")
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
                self._panels[label] = panel = _Panel(ax, label, lines)
                panel.total = epochs
                panel.draw("not started yet")
            axes[0, 0].set_ylabel("mean logit norm ‖f(x)‖₂ (log scale)")
            self._legend = self.figure.legend(handles=list(self._panels[labels[0]].lines.values()),
                                              loc="outside lower center", ncols=len(SPLITS), frameon=False)
        self._canvas = FigureCanvasAgg(self.figure)

    # ------------------------------------------------------------------ feeding it

    def callback_for(self, label: str, epochs: int | None = None,
                     seed: int | None = None) -> Callable[[int, dict], None]:
        """A ``train`` callback drawing the run into ``label``'s panel; ``epochs``: its length (the x axis)."""
        panel = self._panel(label)
        started = False

        def callback(epoch: int, row: dict) -> None:
            nonlocal started
            if not started:  # the panel shows this run from its first trained epoch on
                panel.clear(epochs, seed)
                started = True
            panel.add(row, self._ood_of(row))
            total = f"/{epochs}" if epochs else ""
            self._redraw(panel, f"training: epoch {epoch}{total}, test acc {100 * float(row['test_acc']):.1f}%")

        return callback

    def show_history(self, label: str, history: Sequence[Mapping[str, Any]] | Any, seed: int | None = None) -> None:
        """Draw a finished run's whole history (a list of rows, or a Run) into ``label``'s panel at once."""
        rows = list(getattr(history, "history", history))
        if not rows:
            raise ValueError(f"the history of {label!r} is empty: pass run.history of a trained run")
        panel = self._panel(label)
        panel.clear(len(rows), seed)
        ood = self._ood_of(rows[0])
        for row in rows:
            panel.add(row, ood)
        self._redraw(panel, f"finished: {len(rows)} epochs, test acc {100 * float(rows[-1]['test_acc']):.1f}%")

    def get_run(self, config: Any, **kwargs: Any) -> Any:
        """:func:`lnlab.runs.get_run` with this view following the run: live while it trains (its callback runs
        before those in ``callbacks``), whole when returned."""
        from lnlab.runs import get_run

        label = config.label()
        callbacks = [self.callback_for(label, config.epochs, config.seed), *kwargs.pop("callbacks", ())]
        run = get_run(config, callbacks=callbacks, **kwargs)
        self.show_history(label, run.history, config.seed)
        return run

    # ------------------------------------------------------------------ what it shows

    def lines(self, label: str) -> dict[str, tuple[list[float], list[float]]]:
        """``{"train" | "test" | <OOD set>: (epochs, means)}`` as drawn in ``label``'s panel."""
        panel = self._panel(label)
        return {(self.ood if split == "ood" else split): tuple(map(list, line.get_data()))
                for split, line in panel.lines.items()}

    def title(self, label: str) -> str:
        """The title of ``label``'s panel (run, seed; epoch and test accuracy)."""
        return self._panel(label).ax.get_title()

    def show(self) -> "LiveNormView":
        """Display the figure; in an IPython kernel every later redraw replaces it in place."""
        if in_kernel():
            from IPython.display import display

            self.render = True
            self._redraw()
            self._handle = display(self._image(), display_id=True)
        return self

    def _ipython_display_(self) -> None:
        self.show()

    def __repr__(self) -> str:
        return f"LiveNormView({list(self._panels)}, ood={self.ood!r}, redraws={self.redraws})"

    # ------------------------------------------------------------------ internals

    def _panel(self, label: str) -> _Panel:
        if label not in self._panels:
            raise ValueError(f"no panel {label!r}; this view shows {list(self._panels)}")
        return self._panels[label]

    def _ood_of(self, row: Mapping[str, Any]) -> str:
        """The OOD set drawn: ``self.ood``; unset, the row's first OOD set in ``TRACKED_OOD`` order, then by name
        (a stored history's keys are sorted: the choice must not depend on their order), and the legend says which.
        A history without the set leaves the OOD line empty."""
        if self.ood is None:
            names = [k[len("norm_"):-len("_mean")] for k in row if k.startswith("norm_") and k.endswith("_mean")]
            oods = [n for n in names if n not in ID_SET_NAMES and n not in VALIDATION_OOD_SETS]
            if not oods:
                return ""
            order = {name: i for i, name in enumerate(TRACKED_OOD)}
            self.ood = min(oods, key=lambda n: (order.get(n, len(order)), n))
            for panel in self._panels.values():
                panel.lines["ood"].set_label(self._split_title("ood"))
            self._legend.get_texts()[SPLITS.index("ood")].set_text(self._split_title("ood"))
        return self.ood

    def _split_title(self, split: str) -> str:
        if split == "ood":
            return f"OOD: {self.ood}" if self.ood else "OOD"
        return {"train": "train (un-augmented subset)", "test": "ID test"}[split]

    def _redraw(self, panel: _Panel | None = None, status: str = "") -> None:
        """Give ``panel`` its lines and ``status``, autoscale the y axis; render and show a PNG when rendering."""
        with plots.paper_style():  # the suite's fonts, also for titles and ticks made now
            if panel is not None:
                panel.draw(status)
            for each in self._panels.values():
                each.ax.relim()
            for each in self._panels.values():
                each.ax.autoscale_view(scalex=False)
            if not self.render:
                return
            start = time.perf_counter()
            self.png = self._render_png()
        self.redraws += 1
        if self._handle is not None:
            self._handle.update(self._image())
        self.redraw_seconds = time.perf_counter() - start

    def _render_png(self) -> bytes:
        """The figure as PNG bytes from one canvas draw (``savefig`` draws twice under constrained layout)."""
        from PIL import Image

        self.figure.set_dpi(self.dpi)
        self._canvas.draw()
        buffer = io.BytesIO()
        Image.fromarray(np.asarray(self._canvas.buffer_rgba())).convert("RGB").save(buffer, format="png",
                                                                                   compress_level=1)
        return buffer.getvalue()

    def _image(self) -> Any:
        from IPython.display import Image

        return Image(data=self.png, format="png")
