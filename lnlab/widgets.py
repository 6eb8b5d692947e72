"""Interactive explorers (ipywidgets) built on :mod:`lnlab.plots` and cached runs: no retraining.

Each explorer is an :class:`Explorer`: ``.widget`` is the box to display (the explorer itself
also displays as that box), ``.controls`` maps a name to its slider / dropdown, ``.state`` is the
current control values plus what was computed, ``.figure`` the last figure and ``.text`` the
last printed text. Setting ``explorer.controls["tau"].value = 0.1`` redraws synchronously, so
tests drive explorers headlessly; under papermill a widget just shows as text. In JupyterLab a
slider sends its value when released (``continuous_update=False``), not once per value it passes
while dragged, so a drag costs one redraw. ``explorer.redraw_seconds`` is how long the last redraw
took in the kernel (figure + PNG); tests/test_browser.py measures the whole round trip.

Numbers near 1 or 0 go through :mod:`lnlab.formatting` (``1 − 2.1e-9``, not ``1``).
"""

from __future__ import annotations

import html
import io
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import ipywidgets as W
from matplotlib.figure import Figure

from lnlab import plots
from lnlab.formatting import format_number, format_probability

Renderer = Callable[[dict[str, Any]], tuple[Figure | None, str, dict[str, Any]]]
TEMPERATURE_SCORES = ("msp", "energy")


class Explorer:
    """Controls + a text line + a figure, redrawn by ``render(values) -> (figure, text, extra state)``."""

    def __init__(self, controls: Mapping[str, W.Widget], render: Renderer, title: str = "") -> None:
        self.controls: dict[str, W.Widget] = dict(controls)
        self._render = render
        self.figure: Figure | None = None
        self.text = ""
        self.state: dict[str, Any] = {}
        self.redraw_seconds = float("nan")
        self._png = _PngRenderer()
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
        start = time.perf_counter()
        values = self.values()
        self.figure, self.text, extra = self._render(values)
        self.state = {**values, **extra}
        png = self._png(self.figure) if self.figure is not None else None
        self._text_box.value = f"<pre>{html.escape(self.text)}</pre>"
        if png is not None:
            self._image.value = png
        self.redraw_seconds = time.perf_counter() - start

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


class _PngRenderer:
    """An explorer's figures as PNG bytes, fast enough to follow a slider (one per :class:`Explorer`).

    What ``savefig(bbox_inches="tight")`` shows, in one draw instead of two: lnlab's figures use
    constrained layout, which measures every tick label, axis label, title and figure legend before
    drawing, and ``savefig`` draws once more to crop. Here the figure is drawn once and the canvas is
    cropped to the drawn content; only content that sticks out of the canvas (a long axis label)
    needs a second draw into a larger box. An explorer's successive figures mostly differ in data only
    (a star moves, histograms change): when a new figure's layout-relevant decorations
    (:func:`_layout_signature`) equal those of the last one laid out, its axes get the same positions
    and the same box, and the layout is skipped. PNG compression level 1: a local image.
    """

    PAD_INCHES = 0.1  # around the content, as savefig's tight box

    def __init__(self, dpi: int = 110) -> None:
        self.dpi = dpi
        self._signature: tuple | None = None
        self._positions: list[Any] = []
        self._box: Any = None  # the padded content box in inches, and whether it sticks out of the canvas
        self._overflows = False

    def __call__(self, fig: Figure) -> bytes:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.layout_engine import ConstrainedLayoutEngine

        fig.set_dpi(self.dpi)
        signature = _layout_signature(fig) if isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine) else None
        if signature is not None and signature == self._signature:
            _without_layout_engine(fig)
            for ax, position in zip(fig.axes, self._positions):
                ax.set_position(position)
            if self._overflows:
                return self._savefig(fig, self._box)
            canvas = FigureCanvasAgg(fig)
            canvas.draw()
            return self._crop(canvas, self._box)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        content = fig.get_tightbbox(canvas.get_renderer())
        box, figure_box = content.padded(self.PAD_INCHES), fig.bbox_inches
        overflows = (content.x0 < figure_box.x0 - 0.01 or content.y0 < figure_box.y0 - 0.01
                     or content.x1 > figure_box.x1 + 0.01 or content.y1 > figure_box.y1 + 0.01)
        if signature is not None:
            self._signature, self._box, self._overflows = signature, box, overflows
            self._positions = [ax.get_position(original=True).frozen() for ax in fig.axes]
        _without_layout_engine(fig)  # laid out: keep the positions for a second draw
        return self._savefig(fig, box) if overflows else self._crop(canvas, box)

    def _crop(self, canvas: Any, box: Any) -> bytes:
        """The drawn canvas cut to ``box`` (inches, origin bottom left) within the canvas."""
        import numpy as np
        from PIL import Image

        pixels = np.asarray(canvas.buffer_rgba())
        height, width = pixels.shape[:2]
        left, right = max(0, int(box.x0 * self.dpi)), min(width, int(np.ceil(box.x1 * self.dpi)))
        top, bottom = max(0, height - int(np.ceil(box.y1 * self.dpi))), min(height, height - int(box.y0 * self.dpi))
        buffer = io.BytesIO()
        Image.fromarray(pixels[top:bottom, left:right]).save(buffer, format="png", compress_level=1)
        return buffer.getvalue()

    def _savefig(self, fig: Figure, box: Any) -> bytes:
        """One draw into ``box``, which reaches beyond the canvas (no layout engine: a single draw)."""
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=self.dpi, bbox_inches=box, pil_kwargs={"compress_level": 1})
        return buffer.getvalue()


def _without_layout_engine(fig: Figure) -> None:
    """No layout engine at all (not even a placeholder, with which ``savefig`` draws twice)."""
    import matplotlib

    with matplotlib.rc_context({"figure.autolayout": False, "figure.constrained_layout.use": False}):
        fig.set_layout_engine(None)


def _layout_signature(fig: Figure) -> tuple | None:
    """What constrained layout measures, cheaply: equal signatures give equal axes positions.

    Figure size and layout pads; per axes its grid cell, scales, axis labels, titles, the major tick
    labels (from the locator and formatter, without creating ticks), legends, and any text placed
    outside the axes; the number of entries of each figure legend (its height); the suptitle. None
    (always lay out) for axes outside a grid, e.g. colorbars and insets.
    """
    axes = []
    for ax in fig.axes:
        spec = ax.get_subplotspec()
        if spec is None:
            return None
        axis_labels = []
        for axis in (ax.xaxis, ax.yaxis):
            locs = axis.major.locator()
            axis_labels.append((axis.get_scale(), axis.label.get_text(), axis.label.get_visible(),
                                tuple(axis.major.formatter.format_ticks(locs))))
        legend = ax.get_legend()
        outside = tuple((t.get_text(), tuple(t.get_position())) for t in ax.texts
                        if t.get_transform() != ax.transAxes or not all(0 <= v <= 1 for v in t.get_position()))
        axes.append((spec.get_geometry(), spec.rowspan, spec.colspan, tuple(axis_labels),
                     ax.get_title("left"), ax.get_title("center"), ax.get_title("right"), outside,
                     None if legend is None else tuple(t.get_text() for t in legend.get_texts())))
    legends = tuple((len(leg.get_texts()), getattr(leg, "_ncols", None), getattr(leg, "_loc", None))
                    for leg in fig.legends)
    suptitle = fig.get_suptitle()
    engine = fig.get_layout_engine()
    return (tuple(fig.get_size_inches()), tuple(sorted(engine.get().items())), tuple(axes), legends, suptitle)


# --------------------------------------------------------------------------- score explorer


def score_explorer(runs: Mapping[str, Any], oods: Sequence[str] | None = None,
                   scores: Sequence[str] = ("msp", "energy", "max_logit"), ood: str | None = None,
                   score_name: str = "msp", temperature: float = 1.0) -> Explorer:
    """ID vs OOD score histograms of every run, redrawn from cached logits (paper Fig. 3, Table 1).

    ``runs`` maps a label to a Run (or to a dict of logits with ``"test"`` and OOD keys). Controls:
    ``ood`` (dropdown), ``score`` (msp / energy / max_logit) and ``temperature`` (log slider, used
    by msp and energy). ``state["metrics"]`` holds ``{label: ood_metrics(...)}`` of the shown data.
    """
    from lnlab.metrics import ood_metrics

    oods = list(oods) if oods is not None else plots.ood_names(runs)
    if not runs or not oods:
        raise ValueError("pass runs with cached logits for 'test' and at least one common OOD set")
    controls = {
        "ood": W.Dropdown(options=oods, value=ood or oods[0], description="OOD set"),
        "score": W.Dropdown(options=list(scores), value=score_name, description="score"),
        "temperature": W.FloatLogSlider(value=temperature, base=10, min=-1, max=3, step=0.05,
                                        description="temperature T", readout_format=".3g"),
    }

    def render(values: dict[str, Any]) -> tuple[Figure, str, dict[str, Any]]:
        uses_t = values["score"] in TEMPERATURE_SCORES
        controls["temperature"].disabled = not uses_t
        t = values["temperature"] if uses_t else None
        id_scores, ood_scores = plots.score_sets(runs, values["ood"], values["score"], t)
        metrics = {label: ood_metrics(id_scores[label], ood_scores[label]) for label in id_scores}
        fig = plots.plot_msp_histograms(id_scores, ood_scores, ood_name=values["ood"], score_name=values["score"],
                                        metrics=metrics)
        t_text = f", T={t:.3g}" if uses_t else ""
        lines = [f"{values['score']}{t_text}, ID test vs OOD {values['ood']}:"]
        lines += [f"  {label:<22} FPR95 {100 * m['fpr95']:5.1f}%   AUROC {100 * m['auroc']:5.1f}%"
                  for label, m in metrics.items()]
        extra = {"metrics": metrics, "id_scores": id_scores, "ood_scores": ood_scores, "effective_temperature": t}
        return fig, "\n".join(lines), extra

    return Explorer(controls, render, title="Score explorer: ID vs OOD from cached logits")


# --------------------------------------------------------------------------- bound explorer


def bound_explorer(tau: float = 0.04, k: int = 10, ks: Sequence[int] = (10, 100, 1000),
                   points: Any = None, tau_range: tuple[float, float] = (0.005, 1.0)) -> Explorer:
    """Sliders for τ and the class count k: a star moves along the bound curves (paper Prop. 3).

    The text gives ``lower_bound(τ, k)`` (Prop. 3), ``tight_lower_bound(τ, k)`` and the confidence
    cap ``1 / (1 + (k-1) e^{-gap/τ})``; ``state`` holds the same numbers unrounded.
    ``points`` (runs' final train losses) is passed on to :func:`lnlab.plots.plot_lower_bound`.
    """
    import math

    from lnlab.losses import confidence_cap, lower_bound, tight_lower_bound

    controls = {
        "tau": W.FloatLogSlider(value=tau, base=10, min=math.log10(tau_range[0]), max=math.log10(tau_range[1]),
                                step=0.01, description="τ", readout_format=".3g"),
        "k": W.IntSlider(value=k, min=2, max=1000, description="classes k"),
    }

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
        fig = plots.plot_lower_bound(ks=ks, points=points, marker=(t, n))
        cap = format_probability(numbers["confidence_cap"], numbers["confidence_cap_complement"])
        text = (f"τ = {t:.4g}, k = {n}\n"
                f"  Prop. 3 lower bound     log(1+(k-1)e^(-2/τ))      = {format_number(numbers['lower_bound'])} nats\n"
                f"  tight bound (simplex)   log(1+(k-1)e^(-gap/τ))    = {format_number(numbers['tight_lower_bound'])} nats\n"
                f"  confidence cap (tight)  1/(1+(k-1)e^(-gap/τ))     = {cap}\n"
                f"  (gap = √(k/(k-1)) = {(n / (n - 1)) ** 0.5:.4f}, the unit-norm simplex optimum)")
        return fig, text, numbers

    return Explorer(controls, render, title="Bound explorer: LogitNorm's loss floor and confidence cap")


# --------------------------------------------------------------------------- tau explorer


def tau_explorer(runs: Mapping[str, Any] | Iterable[Any], view: str = "norm", ood: str | None = None,
                 reference: str | None = "CE") -> Explorer:
    """Pick one of several cached LogitNorm runs by τ and compare it with the CE run.

    ``runs``: Runs (list or ``{label: Run}``) with ``config.loss`` / ``config.tau``,
    ``history_frame()`` and ``logits``. Controls: ``tau`` (slider over the cached τ values),
    ``view`` (``"norm"``: logit norm vs epoch; ``"msp"``: MSP histograms) and ``ood``.
    """
    runs = dict(runs) if isinstance(runs, Mapping) else plots.label_runs(runs)
    by_tau = {float(r.config.tau): label for label, r in runs.items() if str(r.config.loss).lower() == "logitnorm"}
    if not by_tau:
        raise ValueError("no LogitNorm run among runs: pass runs trained with loss='logitnorm' at several τ")
    ref = {reference: runs[reference]} if reference in runs else {}
    oods = plots.ood_names(runs)
    taus = sorted(by_tau)
    controls = {
        "tau": W.SelectionSlider(options=[(f"{t:g}", t) for t in taus], value=taus[0], description="τ"),
        "view": W.ToggleButtons(options=[("logit norm vs epoch", "norm"), ("MSP histograms", "msp")], value=view),
        "ood": W.Dropdown(options=oods, value=ood or (oods[0] if oods else None), description="OOD set"),
    }
    controls["tau"].disabled = len(taus) == 1  # nothing to slide to: the text says how to get more

    def render(values: dict[str, Any]) -> tuple[Figure, str, dict[str, Any]]:
        label = by_tau[values["tau"]]
        shown = {**ref, label: runs[label]}
        controls["ood"].disabled = values["view"] != "msp"
        if values["view"] == "msp":
            fig = plots.plot_runs_histograms(shown, values["ood"], "msp")
        else:
            fig = plots.plot_runs_norm_vs_epoch(shown)
        final = runs[label].history_frame().iloc[-1]
        lines = [f"{label}: final train loss {final.get('train_loss', float('nan')):.4g}, "
                 f"test accuracy {100 * final.get('test_acc', float('nan')):.1f}%"]
        if len(taus) == 1:
            lines[0] += "  (the only cached τ: add values to `taus` in the parameters cell to compare several)"
        lines += _tau_view_lines(shown, values["view"], values["ood"])  # what the figure shows, in numbers
        return fig, "\n".join(lines), {"label": label, "shown": list(shown)}

    return Explorer(controls, render, title="τ explorer: cached LogitNorm runs")


def _tau_view_lines(shown: Mapping[str, Any], view: str, ood: str | None) -> list[str]:
    """The τ explorer's figure in numbers: last-epoch mean logit norms, or MSP's FPR95 / AUROC on ``ood``."""
    if view == "msp":
        from lnlab.metrics import ood_metrics

        id_scores, ood_scores = plots.score_sets(shown, ood, "msp")
        lines = [f"  MSP, ID test vs OOD {ood}:"]
        for name in shown:
            m = ood_metrics(id_scores[name], ood_scores[name])
            lines.append(f"    {name:<22} FPR95 {100 * m['fpr95']:5.1f}%   AUROC {100 * m['auroc']:5.1f}%")
        return lines
    lines = ["  mean logit norm ‖f(x)‖ at the last epoch (train / test):"]
    for name, run in shown.items():
        final = run.history_frame().iloc[-1]
        lines.append(f"    {name:<22} {format_number(final.get('norm_train_mean', float('nan')), 3):>8} / "
                     f"{format_number(final.get('norm_test_mean', float('nan')), 3)}")
    return lines


# --------------------------------------------------------------------------- toy explorer (notebook 00)


def toy_explorer(tau: float = 0.04, steps: int = 300, weight_decay: float = 0.0, n: int = 1500, seed: int = 0,
                 extent: float = 8.0, resolution: int = 200, tau_range: tuple[float, float] = (0.005, 1.0)) -> Explorer:
    """τ slider that retrains the 2-D toy's LogitNorm model and redraws its MSP map (paper Eq. 7, :mod:`lnlab.toy`).

    The one explorer that trains inside a redraw: ``steps`` full-batch SGD steps of an MLP 2-64-64-3
    on ``n`` points take about a second on one CPU core. ``state`` holds the ``run``
    (:class:`lnlab.toy.ToyRun`), ``accuracy``, ``norm`` (mean raw logit norm on the data),
    ``msp_data`` / ``msp_ring`` (mean MSP on the data and on the ring 4 ≤ ‖x‖ ≤ 6), ``auroc_ring``
    (AUROC of MSP, data vs ring) and ``seconds`` (training time).
    """
    import math

    from lnlab import toy

    x, y = toy.make_blobs(n, seed=seed)
    ring = toy.RINGS[:1]
    controls = {
        "tau": W.FloatLogSlider(value=tau, base=10, min=math.log10(tau_range[0]), max=math.log10(tau_range[1]),
                                step=0.05, description="τ", readout_format=".3g", continuous_update=False),
    }

    def render(values: dict[str, Any]) -> tuple[Figure, str, dict[str, Any]]:
        run = toy.train_toy(x, y, "logitnorm", tau=float(values["tau"]), weight_decay=weight_decay, steps=steps,
                            seed=seed, record_every=max(1, steps // 50))
        rings = toy.ring_table({run.label: run}, x, rings=ring).iloc[0]
        numbers = {"run": run, "accuracy": float(run.final["accuracy"]), "norm": float(run.final["norm_mean"]),
                   "msp_data": float(rings["msp_data"]), "msp_ring": float(rings["msp_ring"]),
                   "auroc_ring": float(rings["auroc_msp"]), "seconds": run.seconds}
        fig = toy.plot_toy_maps({run.label: run}, x, y, extent=extent, resolution=resolution, rings=ring)
        msp_data = format_probability(rings["msp_data"], rings["doubt_data"])
        msp_ring = format_probability(rings["msp_ring"], rings["doubt_ring"])
        text = (f"{run.label}: {steps} full-batch SGD steps in {run.seconds:.2f} s, "
                f"train accuracy {100 * numbers['accuracy']:.1f}%\n"
                f"  mean raw logit norm on the data  {format_number(numbers['norm'])}\n"
                f"  mean MSP: data {msp_data}, ring {ring[0][0]:g}–{ring[0][1]:g} {msp_ring}; "
                f"AUROC of MSP (data vs ring) {numbers['auroc_ring']:.3f}")
        return fig, text, numbers

    return Explorer(controls, render, title="Toy explorer: retrain the 2-D LogitNorm model at another τ")
