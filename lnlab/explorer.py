"""The machinery of the interactive explorers (:mod:`lnlab.widgets`): controls, a text line and a figure,
redrawn by a render function; the figure rendered to PNG quickly and its layout kept.

:class:`Explorer` holds ``.widget`` (the box to display), ``.controls``, ``.state``, ``.figure`` and
``.text``; setting a control's value redraws synchronously, so tests drive explorers headlessly.
A figure keeps its canvas and its layout (:class:`PngRenderer`), which is measured again only when
its decorations change (:func:`layout_signature`: a new tick label, another axis label).
:class:`Background` computes slow results (the toy explorer's retrains) in a worker thread.
"""

from __future__ import annotations

import html
import io
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import ipywidgets as W
import numpy as np
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

class Drawn(NamedTuple):
    """A figure with its PNG already made (e.g. off the kernel's main thread): shown as is."""

    figure: Figure
    png: bytes


Renderer = Callable[[dict[str, Any]], tuple["Figure | Drawn | None", str, dict[str, Any]]]


class Explorer:
    """Controls + a text line + a figure, redrawn by ``render(values) -> (figure, text, extra state)``.

    ``render`` may return the figure it returned before, changed in place (it is drawn again without a
    new layout when its decorations are unchanged), a :class:`Drawn` (shown as is) or None (the image
    stays; :meth:`show` replaces it later, e.g. from a background thread).
    """

    def __init__(self, controls: Mapping[str, W.Widget], render: Renderer, title: str = "") -> None:
        self.controls: dict[str, W.Widget] = dict(controls)
        self._render = render
        self.figure: Figure | None = None
        self.text = ""
        self.state: dict[str, Any] = {}
        self.redraw_seconds = self.redraw_cpu_seconds = float("nan")
        self._png = PngRenderer()
        self._lock = threading.RLock()  # a background thread may show a result while a control changes
        self._text_box = W.HTML()
        self._image = W.Image(format="png")  # an Image widget, not an Output widget: papermill-safe
        header = [W.HTML(f"<b>{html.escape(title)}</b>")] if title else []
        row = W.HBox(list(self.controls.values()), layout=W.Layout(flex_flow="row wrap", align_items="center"))
        self.widget = W.VBox(header + [row, self._text_box, self._image])
        for control in self.controls.values():
            _fit_control(control)
            control.observe(self._on_change, names="value")
        self.update()

    def values(self) -> dict[str, Any]:
        """Current value of every control."""
        return {name: control.value for name, control in self.controls.items()}

    def update(self) -> None:
        """Recompute the figure and text from the controls and show them."""
        with self._lock:
            start, cpu = time.perf_counter(), time.thread_time()
            values = self.values()
            figure, text, extra = self._render(values)
            self.show(figure, text, {**values, **extra})
            self.redraw_seconds = time.perf_counter() - start
            self.redraw_cpu_seconds = time.thread_time() - cpu

    def show(self, figure: Figure | Drawn | None, text: str, state: Mapping[str, Any]) -> None:
        """Show ``text`` and ``figure`` (None: keep the image) and make ``state`` the explorer's state."""
        with self._lock:
            png = None
            if isinstance(figure, Drawn):
                figure, png = figure
            elif figure is not None:
                png = self._png(figure)
            if figure is not None:
                self.figure = figure
            self.text, self.state = text, dict(state)
            self._text_box.value = f"<pre>{html.escape(text)}</pre>"
            if png is not None:
                self._image.value = png

    def prepare(self, figure: Figure) -> None:
        """Lay out and draw ``figure`` now (e.g. the figure of a view not shown yet), so that showing it later
        costs no layout and, unchanged, no drawing."""
        with self._lock:
            self._png(figure)

    def _on_change(self, _change: Any) -> None:
        self.update()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.state!r})"


def _fit_control(control: W.Widget) -> None:
    """Sliders send their value on release (one redraw per drag, not one per value passed); labels and
    toggle buttons are as wide as their text, never cut to "temperat…"."""
    if "continuous_update" in control.trait_names():
        control.continuous_update = False
    style = getattr(control, "style", None)
    if style is not None and "description_width" in style.trait_names() and getattr(control, "description", ""):
        style.description_width = "initial"
    if isinstance(control, W.ToggleButtons):
        style.button_width = "auto"


# --------------------------------------------------------------------------- PNG


class _Arrangement(NamedTuple):
    """A figure's layout: its axes positions and the padded content box in inches (and whether that box
    sticks out of the canvas)."""

    positions: list[Any]
    box: Any
    overflows: bool


class _Kept:
    """What :class:`PngRenderer` keeps of one figure: its canvas, its layouts by signature and its last PNG."""

    LAYOUTS = 16

    def __init__(self, fig: Figure, canvas: Any, engine: dict | None) -> None:
        self.figure, self.canvas, self.engine = fig, canvas, engine
        self.layouts: OrderedDict[tuple, _Arrangement] = OrderedDict()
        self.applied: tuple | None = None  # the signature whose arrangement the axes have now
        self.png: bytes | None = None

    def layout_for(self, signature: _Signature | None) -> _Signature | None:
        """The signature of a kept layout that fits ``signature``: the same one, else the one in use, else
        the one with the least spare room for tick labels; None if none fits."""
        if signature is None:
            return None
        if signature in self.layouts:
            return signature
        fitting = [known for known in self.layouts if signature.fits_into(known)]
        if not fitting:
            return None
        if self.applied in fitting:
            return self.applied
        return min(fitting, key=lambda known: sum(sum(axes) for axes in known.room))


class PngRenderer:
    """An explorer's figures as PNG bytes, fast enough to follow a slider (one per :class:`Explorer`).

    What ``savefig(bbox_inches="tight")`` shows, in one draw instead of two: lnlab's figures use
    constrained layout, which measures every tick label, axis label, title and figure legend before
    drawing, and ``savefig`` draws once more to crop. Here the figure is drawn once and the canvas is
    cropped to the drawn content; only content that sticks out of the canvas (a long axis label)
    needs a second draw into a larger box. A figure changed in place keeps its canvas, and a layout
    per set of layout-relevant decorations (:func:`layout_signature`) it has had: it is laid out
    again only for decorations it has not had yet. A figure not changed since its last PNG (``stale``
    unset) is not drawn again. A new figure whose decorations equal those of the last one laid out
    gets that layout. The last :attr:`KEEP` figures are kept. PNG compression level 1: a local image.
    """

    PAD_INCHES = 0.1  # around the content, as savefig's tight box
    KEEP = 8

    def __init__(self, dpi: int = 110) -> None:
        self.dpi = dpi
        self._signature: tuple | None = None  # of the last figure laid out, with its arrangement
        self._arrangement: _Arrangement | None = None
        self._kept: OrderedDict[int, _Kept] = OrderedDict()

    def __call__(self, fig: Figure) -> bytes:
        kept = self._kept.get(id(fig))
        if kept is not None and kept.figure is fig:
            self._kept.move_to_end(id(fig))
            if kept.png is not None and not fig.stale:
                return kept.png
        else:
            kept = self._keep(fig)
        signature = layout_signature(fig, kept.engine) if kept.engine is not None else None
        known = kept.layout_for(signature)
        if known is not None:
            kept.png = self._draw(kept, known, kept.layouts[known])
        elif signature is not None and not kept.layouts and self._signature is not None \
                and signature.fits_into(self._signature):
            kept.png = self._draw(kept, signature, self._arrangement)  # a new figure like the last one laid out
        else:
            kept.png = self._lay_out(kept, signature)
        return kept.png

    def _keep(self, fig: Figure) -> _Kept:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.layout_engine import ConstrainedLayoutEngine

        engine = fig.get_layout_engine()
        kept = _Kept(fig, FigureCanvasAgg(fig), dict(engine.get()) if isinstance(engine, ConstrainedLayoutEngine)
                     else None)
        fig.set_dpi(self.dpi)
        self._kept[id(fig)] = kept
        while len(self._kept) > self.KEEP:
            self._kept.popitem(last=False)
        return kept

    def _lay_out(self, kept: _Kept, signature: tuple | None) -> bytes:
        """Draw with constrained layout, find the content box, keep the arrangement and drop the engine."""
        from matplotlib.layout_engine import ConstrainedLayoutEngine

        fig = kept.figure
        if kept.engine is not None and not isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine):
            fig.set_layout_engine(ConstrainedLayoutEngine(**kept.engine))  # new decorations: lay out again
        kept.canvas.draw()
        content = fig.get_tightbbox(kept.canvas.get_renderer())
        box, figure_box = content.padded(self.PAD_INCHES), fig.bbox_inches
        overflows = (content.x0 < figure_box.x0 - 0.01 or content.y0 < figure_box.y0 - 0.01
                     or content.x1 > figure_box.x1 + 0.01 or content.y1 > figure_box.y1 + 0.01)
        _without_layout_engine(fig)  # laid out: keep the positions for the next draws
        if signature is not None:
            arrangement = _Arrangement([ax.get_position(original=True).frozen() for ax in fig.axes], box, overflows)
            # Ticks depend on the axes' size: the laid-out figure has the signature the next change starts from.
            laid_out = layout_signature(fig, kept.engine)
            kept.layouts[signature] = kept.layouts[laid_out] = arrangement
            kept.applied = laid_out
            while len(kept.layouts) > kept.LAYOUTS:
                kept.layouts.popitem(last=False)
            self._signature, self._arrangement = signature, arrangement  # what a new figure is compared with
        if overflows:
            return self._savefig(fig, box)
        fig.stale = False  # just drawn (dropping the engine marked it)
        return self._crop(kept.canvas, box)

    def _draw(self, kept: _Kept, signature: tuple, arrangement: _Arrangement) -> bytes:
        """One draw with a known arrangement (no layout engine)."""
        fig = kept.figure
        _without_layout_engine(fig)
        if kept.applied != signature:
            for ax, position in zip(fig.axes, arrangement.positions):
                ax.set_position(position)
                ax.set_in_layout(True)  # set_position took it out of any later layout
            kept.layouts.setdefault(signature, arrangement)
            kept.applied = signature
        if arrangement.overflows:
            return self._savefig(fig, arrangement.box)
        kept.canvas.draw()
        return self._crop(kept.canvas, arrangement.box)

    def _crop(self, canvas: Any, box: Any) -> bytes:
        """The drawn canvas cut to ``box`` (inches, origin bottom left), as large as ``savefig`` makes it:
        where the padded box reaches past the canvas, the margin is the figure's face colour, as savefig's."""
        from PIL import Image

        pixels = np.asarray(canvas.buffer_rgba())
        height, width = pixels.shape[:2]
        out_w, out_h = int(box.width * self.dpi), int(box.height * self.dpi)  # savefig's size: truncated
        left, top = int(round(box.x0 * self.dpi)), height - int(round(box.y1 * self.dpi))
        face = np.round(np.asarray(to_rgba(canvas.figure.get_facecolor())) * 255).astype(np.uint8)
        image = np.empty((out_h, out_w, 4), dtype=np.uint8)
        image[...] = face
        x0, x1 = max(0, left), min(width, left + out_w)
        y0, y1 = max(0, top), min(height, top + out_h)
        if x1 > x0 and y1 > y0:
            image[y0 - top:y1 - top, x0 - left:x1 - left] = pixels[y0:y1, x0:x1]
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="png", compress_level=1)
        return buffer.getvalue()

    def _savefig(self, fig: Figure, box: Any) -> bytes:
        """One draw into ``box``, which reaches beyond the canvas (no layout engine: a single draw)."""
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=self.dpi, bbox_inches=box, pil_kwargs={"compress_level": 1})
        fig.stale = False  # just drawn
        return buffer.getvalue()


def _without_layout_engine(fig: Figure) -> None:
    """No layout engine at all (not even a placeholder, with which ``savefig`` draws twice)."""
    import matplotlib

    if fig.get_layout_engine() is None:
        return
    with matplotlib.rc_context({"figure.autolayout": False, "figure.constrained_layout.use": False}):
        fig.set_layout_engine(None)


class _Signature(NamedTuple):
    """What constrained layout measures: ``decorations`` (which texts, grids and legends there are: must be
    equal for a layout to be reused) and ``room`` (per axes, the sizes of its axis labels, titles and tick
    labels: a layout made for texts at least as large fits)."""

    decorations: tuple
    room: tuple

    def fits_into(self, other: _Signature) -> bool:
        """Whether a layout made for ``other`` has room for this figure's texts."""
        return self.decorations == other.decorations and all(
            new <= old + 0.05 for mine, theirs in zip(self.room, other.room) for new, old in zip(mine, theirs))


_TEXT_SIZES: dict[tuple, tuple[float, float]] = {}


def _text_size(text: str, prop: Any) -> tuple[float, float]:
    """Width and height in points of ``text`` (lines: the widest, their heights added) in font ``prop``;
    kept, as tick labels and titles repeat."""
    key = (text, prop)
    if key not in _TEXT_SIZES:
        from matplotlib.textpath import text_to_path

        sizes = [text_to_path.get_text_width_height_descent(line, prop, ismath=line.count("$") >= 2)[:2]
                 for line in text.split("\n")] if text else [(0.0, 0.0)]
        _TEXT_SIZES[key] = (round(max(float(w) for w, _ in sizes), 2), round(sum(float(h) for _, h in sizes), 2))
    return _TEXT_SIZES[key]


def _shown(text: Any) -> tuple[float, float]:
    return _text_size(text.get_text(), text.get_fontproperties()) if text.get_visible() else (0.0, 0.0)


def _tick_room(axis: Any) -> tuple[float, float, float, float]:
    """The room an axis's visible major tick labels take, from the locator and formatter (no layout):
    the widest and the tallest label, and the widths of the first and last (which reach past the axes'
    ends), in points."""
    locs = axis.major.locator()
    labels = axis.major.formatter.format_ticks(locs)  # all of them, as drawing does: the format depends on all
    low, high = sorted(axis.get_view_interval())
    margin = 1e-9 * max(abs(low), abs(high), 1e-300)
    shown = [label for loc, label in zip(locs, labels) if low - margin <= loc <= high + margin and label]
    if not shown or not axis.get_visible():
        return (0.0, 0.0, 0.0, 0.0)
    prop = axis.get_major_ticks(1)[0].label1.get_fontproperties()
    sizes = [_text_size(label, prop) for label in shown]
    return (max(w for w, _ in sizes), max(h for _, h in sizes), sizes[0][0], sizes[-1][0])


def layout_signature(fig: Figure, pads: Mapping[str, Any] | None = None) -> _Signature | None:
    """What constrained layout measures, cheaply (no drawing): a layout made for a figure of the same
    decorations with texts at least as large fits it (the axes keep their places; smaller texts leave a
    little more room than a new layout would).

    Decorations: figure size and layout pads; per axes its grid cell, visibility, scales, whether it has
    axis labels and titles, its legend and any text placed outside the axes; the number of entries of
    each figure legend (its height); the suptitle. Room: per axes the sizes of its axis labels and titles
    and the :func:`_tick_room` of each axis. None (always lay out) for axes outside a grid, e.g. colorbars
    and insets. ``pads``: the constrained layout's settings, for a figure laid out before and drawn without
    its engine since (default: its engine's).
    """
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    axes, room = [], []
    for ax in fig.axes:
        spec = ax.get_subplotspec()
        if spec is None:
            return None
        titles = [ax.title] + [getattr(ax, name) for name in ("_left_title", "_right_title") if hasattr(ax, name)]
        texts = [axis.label for axis in (ax.xaxis, ax.yaxis)] + list(titles)
        legend = ax.get_legend()
        outside = tuple((t.get_text(), tuple(t.get_position())) for t in ax.texts
                        if t.get_transform() != ax.transAxes or not all(0 <= v <= 1 for v in t.get_position()))
        axes.append((spec.get_geometry(), spec.rowspan, spec.colspan, ax.get_visible(),
                     ax.xaxis.get_scale(), ax.yaxis.get_scale(), tuple(bool(t.get_text()) and t.get_visible()
                                                                       for t in texts),
                     outside, None if legend is None else tuple(t.get_text() for t in legend.get_texts())))
        room.append(tuple(v for t in texts for v in _shown(t)) + _tick_room(ax.xaxis) + _tick_room(ax.yaxis))
    legends = tuple((len(leg.get_texts()), getattr(leg, "_ncols", None), getattr(leg, "_loc", None))
                    for leg in fig.legends)
    if pads is None:
        engine = fig.get_layout_engine()
        pads = engine.get() if isinstance(engine, ConstrainedLayoutEngine) else None
    pads = tuple(sorted(pads.items())) if pads is not None else None
    return _Signature((tuple(fig.get_size_inches()), pads, tuple(axes), legends, fig.get_suptitle()), tuple(room))


class Background:
    """One worker thread that computes ``compute(key)`` for the keys asked for, most recent request first,
    and calls ``done(key, result)`` after each; results are kept (``results``)."""

    def __init__(self, compute: Callable[[Any], Any], done: Callable[[Any, Any], None]) -> None:
        self._compute, self._done = compute, done
        self.results: dict[Any, Any] = {}
        self.errors: dict[Any, BaseException] = {}
        self._wanted: list[Any] = []
        self._busy: Any = None
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def want(self, keys: Sequence[Any]) -> None:
        """Compute ``keys`` (first first) before anything asked for earlier."""
        with self._wake:
            fresh = [key for key in dict.fromkeys(keys) if key not in self.results and key != self._busy]
            self._wanted = fresh + [key for key in self._wanted if key not in fresh]
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="lnlab-explorer", daemon=True)
                self._thread.start()
            self._wake.notify()

    def idle(self, timeout: float | None = None) -> bool:
        """Wait until nothing is asked for or being computed; return whether that happened in ``timeout`` s."""
        with self._wake:
            return self._wake.wait_for(lambda: not self._wanted and self._busy is None, timeout)

    def _work(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: bool(self._wanted))
                self._busy = key = self._wanted.pop(0)
            try:
                result = self._compute(key)
            except Exception as error:  # shown by done(); the thread keeps serving
                result = error
            with self._wake:
                if isinstance(result, Exception):
                    self.errors[key] = result
                else:
                    self.errors.pop(key, None)
                    self.results[key] = result
            try:
                self._done(key, result)
            finally:
                with self._wake:
                    self._busy = None
                    self._wake.notify_all()


def in_kernel() -> bool:
    """Whether this runs in a Jupyter kernel (where a widget can be updated from a thread)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")
