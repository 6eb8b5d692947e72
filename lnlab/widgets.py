"""Interactive explorers (ipywidgets) of trained runs, built on :mod:`lnlab.plots` and cached runs: no retraining.
The bound explorer (notebook 03) is :mod:`lnlab.bound_widgets`, the toy explorer (notebook 00, the one that
trains) :mod:`lnlab.toy_widgets`; all three share :mod:`lnlab.explorer`.

Each explorer is an :class:`Explorer`: ``.widget`` is the box to display (the explorer itself
also displays as that box), ``.controls`` maps a name to its slider / dropdown, ``.state`` is the
current control values plus what was computed, ``.figure`` the last figure and ``.text`` the
last printed text. Setting ``explorer.controls["tau"].value = 0.1`` redraws synchronously, so
tests drive explorers headlessly; under papermill a widget just shows as text. In JupyterLab a
slider sends its value when released (``continuous_update=False``), not once per value it passes
while dragged, so a drag costs one redraw. ``explorer.redraw_seconds`` is how long the last redraw
took in the kernel (figure + PNG; ``redraw_cpu_seconds``: the CPU time of it, which a busy machine
changes less); tests/test_browser.py measures the whole round trip.

Fast redraws (a target of 0.3 s from a control to the new image on two busy cores): an explorer
draws its figure once with :mod:`lnlab.plots` and then changes that figure in place (new bin heights,
a moved star, another run's line) instead of building a new one; what a control only selects
(histograms per OOD set, score, temperature and epoch) is computed once and kept; each figure keeps
its canvas and its layout, which is measured again only when its decorations change (a new tick
label, another axis label). Where a figure is not the shape an updater expects (``plots`` changed),
the explorer builds a new one: slower, never wrong.

Numbers near 1 or 0 go through :mod:`lnlab.formatting` (``1 − 2.1e-9``, not ``1``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import ipywidgets as W
import numpy as np
from matplotlib.figure import Figure

from lnlab import plots
from lnlab.explorer import Explorer
from lnlab.formatting import format_number

TEMPERATURE_SCORES = ("msp", "energy")
HISTOGRAM_BINS = 40  # bins of the score histograms (plots.plot_msp_histograms's default)


# --------------------------------------------------------------------------- in-place figure updates


def _fill_updatable(collection: Any) -> bool:
    """A ``fill_between`` area that takes new data (matplotlib ≥ 3.10); older ones: the figure is rebuilt."""
    return hasattr(collection, "set_data") and hasattr(collection, "get_paths")


def _rescale(axes: Sequence[Any]) -> None:
    """Data limits and autoscaled view limits from the artists' new data, as a new figure would have them
    (shared axes: every sibling's limits first, then the views)."""
    for ax in axes:
        ax.relim()
        if not hasattr(ax, "_update_collection_limits"):  # matplotlib < 3.11: relim skips collections
            for collection in ax.collections:
                ax.update_datalim(collection.get_datalim(ax.transData))
    for ax in axes:
        ax.autoscale_view()


def _metrics_box(metrics: Mapping[str, float]) -> str:
    """The FPR95 / AUROC box of a histogram panel (as :func:`lnlab.plots.plot_msp_histograms` prints it)."""
    return f"FPR95 {100 * metrics['fpr95']:.1f}%\nAUROC {100 * metrics['auroc']:.1f}%"


def _update_histograms(fig: Figure, panels: Sequence[tuple[str, "_Panel"]], ood: str, score_name: str) -> bool:
    """Give a :func:`lnlab.plots.plot_msp_histograms` figure new histograms in place: ``panels`` is
    ``[(title, panel)]`` in the figure's order. False (nothing changed) if the figure is not that shape."""
    axes = [ax for ax in fig.axes if ax.get_visible()]
    if len(axes) != len(panels) or len(fig.legends) != 1 or len(fig.legends[0].get_texts()) != 2:
        return False
    boxes = []
    for ax in axes:
        found = [t for t in ax.texts if t.get_text().startswith("FPR95")]
        if len(ax.collections) != 2 or len(found) != 1 or not all(_fill_updatable(c) for c in ax.collections):
            return False
        boxes.append(found[0])
    xlabel = plots.score_axis_label(score_name)
    for ax, box, (title, panel) in zip(axes, boxes, panels):
        for fill, heights in zip(ax.collections, (panel.id_heights, panel.ood_heights)):
            fill.set_data(panel.edges, np.zeros(len(panel.edges)), np.append(heights, heights[-1]))
        box.set_text(_metrics_box(panel.metrics))
        ax.title.set_text(title)  # the Text objects keep the figure's fonts (set_title would apply today's rc)
        ax.xaxis.label.set_text(xlabel)
    fig.legends[0].get_texts()[1].set_text(f"OOD: {ood}")
    _rescale(axes)
    fig.stale = True
    return True


def _update_norm_run(fig: Figure, old: tuple[str, Any], new: tuple[str, Any]) -> bool:
    """Replace one run's lines and bands in a :func:`lnlab.plots.plot_norm_vs_epoch` figure by another's.

    ``old`` / ``new`` are ``(label, history frame)``. Each panel's set is found from the drawn data, so
    the figure's choice of sets does not matter; False (nothing changed) if a panel lacks the run's line,
    the new history lacks a set, or a band cannot take new data.
    """
    from matplotlib.colors import to_rgb

    (old_label, old_frame), (new_label, new_frame) = old, new
    axes = [ax for ax in fig.axes if ax.get_visible()]
    plan = []
    for ax in axes:
        lines = [line for line in ax.get_lines() if line.get_label() == old_label]
        if len(lines) != 1 or any(t.get_text().startswith("no history") for t in ax.texts):
            return False
        drawn = np.asarray(lines[0].get_ydata(), dtype=np.float64)
        split = next((s for s in plots.norm_splits(old_frame)
                      if np.array_equal(old_frame[f"norm_{s}_mean"].to_numpy(np.float64), drawn, equal_nan=True)), None)
        if split is None or f"norm_{split}_mean" not in new_frame.columns:
            return False
        color = to_rgb(lines[0].get_color())
        bands = [c for c in ax.collections if len(c.get_facecolor()) and tuple(c.get_facecolor()[0][:3]) == color]
        band_columns = [f"norm_{split}_p10", f"norm_{split}_p90"]
        band_ok = not bands or (_fill_updatable(bands[0]) and set(band_columns) <= set(new_frame.columns))
        if len(bands) > 1 or not band_ok:
            return False
        plan.append((lines[0], bands[0] if bands else None, split))
    legend_texts = [t for leg in fig.legends for t in leg.get_texts() if t.get_text() == old_label]
    if not plan or len(legend_texts) != 1:
        return False
    epochs = new_frame.index.to_numpy()
    for line, band, split in plan:
        line.set_data(epochs, new_frame[f"norm_{split}_mean"].to_numpy())
        line.set_label(new_label)
        if band is not None:
            band.set_data(epochs, new_frame[f"norm_{split}_p10"].to_numpy(), new_frame[f"norm_{split}_p90"].to_numpy())
    legend_texts[0].set_text(new_label)
    _rescale(axes)
    fig.stale = True
    return True



# --------------------------------------------------------------------------- histograms, computed once


class _Panel(NamedTuple):
    """One run's histogram panel: shared bin edges, ID / OOD densities, ID / OOD scores and OOD metrics."""

    edges: np.ndarray
    id_heights: np.ndarray
    ood_heights: np.ndarray
    id_scores: np.ndarray
    ood_scores: np.ndarray
    metrics: dict[str, float]


class _Histograms:
    """Scores, histograms and OOD metrics of runs per (OOD set, score, temperature, epoch), each computed
    once: what a control of the score explorer or the τ explorer only selects (paper Fig. 1 / 3).

    ``runs``: ``{label: Run, Seeds (first seed) or dict of logits}``. ``epoch`` None: the final logits
    (``Run.logits_for``); otherwise ``Run.snapshot(epoch, name)``.
    """

    KEEP = 256  # panels kept (a few KB each at the ci / quick sizes)

    def __init__(self, runs: Mapping[str, Any]) -> None:
        self.runs = runs
        self._logits: dict[tuple, Any] = {}
        self._scores: dict[tuple, np.ndarray] = {}
        self._panels: OrderedDict[tuple, dict[str, _Panel]] = OrderedDict()
        self._labels: dict[str, Any] = {}

    def labels(self, label: str) -> Any:
        """ID test labels of a run (``run.labels``), None for plain logits or where the data set is missing."""
        if label not in self._labels:
            try:
                self._labels[label] = getattr(self.runs[label], "labels", None)
            except (OSError, ValueError):  # the test set is not available here: no accuracy shown
                self._labels[label] = None
        return self._labels[label]

    def logits(self, label: str, name: str, epoch: int | None = None) -> Any:
        key = (label, name, epoch)
        if key not in self._logits:
            from lnlab.evaluate import logits_of

            run = self.runs[label]
            self._logits[key] = logits_of(run, name) if epoch is None else run.snapshot(epoch, name)
        return self._logits[key]

    def preload(self, names: Sequence[str], epochs: Sequence[int | None] = (None,)) -> None:
        """Load every run's logits of the sets ``names`` at ``epochs`` now (a set's first load takes a while):
        a control that only selects among them then finds them loaded."""
        for label in self.runs:
            for name in names:
                for epoch in epochs:
                    self.logits(label, name, epoch)

    def scores(self, label: str, name: str, score_name: str, temperature: float | None,
               epoch: int | None) -> np.ndarray:
        key = (label, name, score_name, temperature, epoch)
        if key not in self._scores:
            from lnlab.scores import score

            kwargs = {} if temperature is None else {"temperature": temperature}
            values = score(score_name, self.logits(label, name, epoch), **kwargs)
            self._scores[key] = values.detach().double().cpu().numpy().ravel()
        return self._scores[key]

    def panels(self, labels: Sequence[str], ood: str, score_name: str, temperature: float | None = None,
               epoch: int | None = None) -> dict[str, _Panel]:
        """``{label: _Panel}`` for the runs ``labels`` drawn together (their bins are shared)."""
        key = (tuple(labels), ood, score_name, temperature, epoch)
        if key in self._panels:
            self._panels.move_to_end(key)
            return self._panels[key]
        from lnlab.metrics import ood_metrics

        pairs = {label: (self.scores(label, "test", score_name, temperature, epoch),
                         self.scores(label, ood, score_name, temperature, epoch)) for label in labels}
        edges = plots.shared_bins(score_name, pairs.values(), HISTOGRAM_BINS)
        found = {label: _Panel(edges, _density(ids, edges), _density(oods, edges), ids, oods, ood_metrics(ids, oods))
                 for label, (ids, oods) in pairs.items()}
        self._panels[key] = found
        while len(self._panels) > self.KEEP:
            self._panels.popitem(last=False)
        return found


def _density(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Histogram heights as seaborn's ``stat="density"`` draws them (the values inside the bins integrate to 1)."""
    counts, _ = np.histogram(values, bins=edges)
    total = counts.sum()
    return counts / (total * np.diff(edges)) if total else np.zeros(len(edges) - 1)


def _histogram_figure(panels: Mapping[str, _Panel], ood: str, score_name: str, subtitle: str | None = None) -> Figure:
    kwargs = {"subtitle": subtitle} if subtitle else {}  # plots without subtitles take none
    return plots.plot_msp_histograms({label: p.id_scores for label, p in panels.items()},
                                     {label: p.ood_scores for label, p in panels.items()}, ood_name=ood,
                                     score_name=score_name, metrics={label: p.metrics for label, p in panels.items()},
                                     bins=HISTOGRAM_BINS, **kwargs)


def _metric_lines(panels: Mapping[str, _Panel], indent: str = "  ",
                  accuracy: Mapping[str, float] | None = None) -> list[str]:
    lines = []
    for label, panel in panels.items():
        m = panel.metrics
        line = f"{indent}{label:<22} FPR95 {100 * m['fpr95']:5.1f}%   AUROC {100 * m['auroc']:5.1f}%"
        if accuracy and label in accuracy:
            line += f"   test accuracy {100 * accuracy[label]:5.1f}%"
        lines.append(line)
    return lines


# --------------------------------------------------------------------------- score explorer


def common_snapshot_epochs(runs: Mapping[str, Any]) -> list[int]:
    """Epochs at which every run stores test and OOD logits (``Run.snapshot_epochs``; first seed of a
    ``Seeds``); empty for dicts of logits."""
    epochs = None
    for run in runs.values():
        own = getattr(run, "snapshot_epochs", None)
        if own is None:
            return []
        epochs = set(own) if epochs is None else epochs & set(own)
    return sorted(epochs or ())


def score_explorer(runs: Mapping[str, Any], oods: Sequence[str] | None = None,
                   scores: Sequence[str] = ("msp", "energy", "max_logit"), ood: str | None = None,
                   score_name: str = "msp", temperature: float = 1.0, epoch: int | None = None) -> Explorer:
    """ID vs OOD score histograms of every run, redrawn from cached logits (paper Fig. 1 / 3, Table 1).

    ``runs`` maps a label to a Run (or to a dict of logits with ``"test"`` and OOD keys). Controls:
    ``ood`` (dropdown), ``score`` (msp / energy / max_logit), ``temperature`` (log slider, used by msp
    and energy) and, when the runs store logits along training (``Run.snapshot_epochs``, common to all),
    ``epoch``: the histograms, FPR95 / AUROC and test accuracy after that epoch (default: the last).
    ``state["metrics"]`` holds ``{label: ood_metrics(...)}`` of the shown data.
    """
    oods = list(oods) if oods is not None else plots.ood_names(runs)
    if not runs or not oods:
        raise ValueError("pass runs with cached logits for 'test' and at least one common OOD set")
    data = _Histograms(runs)
    epochs = common_snapshot_epochs(runs)
    controls = {
        "ood": W.Dropdown(options=oods, value=ood or oods[0], description="OOD set"),
        "score": W.Dropdown(options=list(scores), value=score_name, description="score"),
        "temperature": W.FloatLogSlider(value=temperature, base=10, min=-1, max=3, step=0.05,
                                        description="temperature T", readout_format=".3g"),
    }
    if len(epochs) > 1:  # runs without logits along training: no epoch slider
        if epoch is not None and epoch not in epochs:
            raise ValueError(f"epoch {epoch} is not stored by every run; pick one of {epochs}")
        controls["epoch"] = W.SelectionSlider(options=[(str(e), e) for e in epochs], value=epoch or epochs[-1],
                                              description="after epoch")
    last = epochs[-1] if epochs else None
    data.preload(["test", *oods], [None, *(e for e in epochs if e != last)])
    subtitle = _recipe_line(runs, first_seed=True)  # as the notebooks' histogram figures have it
    shown: dict[str, Any] = {}  # the figure and what it shows

    def render(values: dict[str, Any]) -> tuple[Figure, str, dict[str, Any]]:
        uses_t = values["score"] in TEMPERATURE_SCORES
        controls["temperature"].disabled = not uses_t
        t = values["temperature"] if uses_t else None
        at = values.get("epoch")
        panels = data.panels(list(runs), values["ood"], values["score"], t, None if at in (None, last) else at)
        # Panel titles say when the logits are not the final ones: the figure alone must not pass for the end.
        titles = {label: label if at in (None, last) else f"{label}, after epoch {at} of {last}" for label in panels}
        titled = [(titles[label], panel) for label, panel in panels.items()]
        fig = shown.get("figure")
        if fig is None or not _update_histograms(fig, titled, values["ood"], values["score"]):
            fig = _histogram_figure(dict(titled), values["ood"], values["score"], subtitle)
        shown["figure"] = fig
        t_text = f", T={t:.3g}" if uses_t else ""
        at_text = f", after epoch {at} of {last}" if at is not None else ""
        accuracy = _accuracies(data, at if at != last else None) if at is not None else None
        lines = [f"{values['score']}{t_text}, ID test vs OOD {values['ood']}{at_text}:"]
        lines += _metric_lines(panels, accuracy=accuracy)
        extra = {"metrics": {label: p.metrics for label, p in panels.items()},
                 "id_scores": {label: p.id_scores for label, p in panels.items()},
                 "ood_scores": {label: p.ood_scores for label, p in panels.items()},
                 "effective_temperature": t, "epoch": at}
        if accuracy:
            extra["accuracy"] = accuracy
        return fig, "\n".join(lines), extra

    return Explorer(controls, render, title="Score explorer: ID vs OOD from cached logits")


def _accuracies(data: _Histograms, epoch: int | None) -> dict[str, float]:
    """ID test accuracy of each run from its logits after ``epoch`` (None: the last) and ``run.labels``."""
    found = {}
    for label in data.runs:
        labels = data.labels(label)
        if labels is not None:
            logits = data.logits(label, "test", epoch)
            found[label] = float((logits.argmax(1) == labels).float().mean())
    return found


# --------------------------------------------------------------------------- tau explorer


def tau_explorer(runs: Mapping[str, Any] | Iterable[Any], view: str = "norm", ood: str | None = None,
                 reference: str | None = "CE") -> Explorer:
    """Pick one of several cached LogitNorm runs by τ and compare it with the CE run.

    ``runs``: Runs (list or ``{label: Run}``) with ``config.loss`` / ``config.tau``,
    ``history_frame()`` and ``logits``. Controls: ``tau`` (slider over the cached τ values),
    ``view`` (``"norm"``: logit norm vs epoch; ``"msp"``: MSP histograms) and ``ood``.
    Each view keeps its figure (both are drawn when the explorer is made); moving τ swaps the LogitNorm
    run's lines or histograms in place.
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
    data = _Histograms(runs)
    data.preload(["test", *oods])
    frames: dict[str, Any] = {}
    views: dict[str, dict[str, Any]] = {"norm": {}, "msp": {}}  # per view: its figure and what it shows

    def frame(label: str) -> Any:
        if label not in frames:
            frames[label] = _norm_frame(runs[label])
        return frames[label]

    def norm_figure(label: str) -> Figure:
        kept, shown = views["norm"], {**ref, label: runs[label]}
        if kept.get("label") == label:
            return kept["figure"]
        if (not kept or not _same_subtitle(kept["figure"], shown, first_seed=False)
                or not _update_norm_run(kept["figure"], (kept["label"], frame(kept["label"])), (label, frame(label)))):
            kept["figure"] = plots.plot_runs_norm_vs_epoch(shown)
        kept["label"] = label
        return kept["figure"]

    def msp_figure(label: str, ood_name: str, panels: Mapping[str, _Panel]) -> Figure:
        kept, shown = views["msp"], {**ref, label: runs[label]}
        if (kept.get("label"), kept.get("ood")) == (label, ood_name):
            return kept["figure"]
        if (not kept or not _same_subtitle(kept["figure"], shown, first_seed=True)
                or not _update_histograms(kept["figure"], list(panels.items()), ood_name, "msp")):
            kept["figure"] = plots.plot_runs_histograms(shown, ood_name, "msp", bins=HISTOGRAM_BINS)
        kept.update(label=label, ood=ood_name)
        return kept["figure"]

    def render(values: dict[str, Any]) -> tuple[Figure, str, dict[str, Any]]:
        label = by_tau[values["tau"]]
        shown = {**ref, label: runs[label]}
        controls["ood"].disabled = values["view"] != "msp"
        final = frame(label).iloc[-1]
        lines = [f"{label}: final train loss {final.get('train_loss', float('nan')):.4g}, "
                 f"test accuracy {100 * final.get('test_acc', float('nan')):.1f}%"]
        if len(taus) == 1:
            lines[0] += "  (the only cached τ: add values to `taus` in the parameters cell to compare several)"
        if values["view"] == "msp":  # what the figure shows, in numbers
            panels = data.panels(list(shown), values["ood"], "msp")
            fig = msp_figure(label, values["ood"], panels)
            lines += [f"  MSP, ID test vs OOD {values['ood']}:"] + _metric_lines(panels, indent="    ")
        else:
            fig = norm_figure(label)
            lines += _norm_lines({name: frame(name) for name in shown})
        return fig, "\n".join(lines), {"label": label, "shown": list(shown)}

    explorer = Explorer(controls, render, title="τ explorer: cached LogitNorm runs")
    label = by_tau[controls["tau"].value]  # the other view, drawn now: switching to it costs nothing
    if view == "msp":
        explorer.prepare(norm_figure(label))
    elif controls["ood"].value is not None:
        ood_name = controls["ood"].value
        explorer.prepare(msp_figure(label, ood_name, data.panels([*ref, label], ood_name, "msp")))
    return explorer


def _recipe_line(runs: Mapping[str, Any], first_seed: bool) -> str | None:
    """The subtitle ``plots`` gives a figure of ``runs``: their recipe line (:func:`lnlab.plots.recipe_line`),
    of every seed or of the first seed only; None for plain logits."""
    from lnlab.evaluate import runs_of

    recipe_line = getattr(plots, "recipe_line", None)  # plots without subtitles: None
    if recipe_line is None:
        return None
    return recipe_line({label: runs_of(group)[0] for label, group in runs.items()} if first_seed else runs)


def _same_subtitle(fig: Figure, runs: Mapping[str, Any], first_seed: bool) -> bool:
    """Whether ``fig`` already has the subtitle ``plots`` gives a figure of ``runs``: a figure changed in
    place keeps its subtitle."""
    return fig.get_suptitle() == (_recipe_line(runs, first_seed) or "")


def _norm_frame(group: Any) -> Any:
    """The history a norm figure draws for one label: the run's, or the seeds' mean and range (``Seeds``)."""
    from lnlab.evaluate import runs_of

    members = runs_of(group)
    if len(members) == 1:
        return members[0].history_frame()
    return plots.seed_spread([run.history_frame() for run in members])


def _norm_lines(frames: Mapping[str, Any]) -> list[str]:
    """The norm view in numbers: last-epoch mean logit norms (train / test)."""
    lines = ["  mean logit norm ‖f(x)‖ at the last epoch (train / test):"]
    for name, frame in frames.items():
        final = frame.iloc[-1]
        lines.append(f"    {name:<22} {format_number(final.get('norm_train_mean', float('nan')), 3):>8} / "
                     f"{format_number(final.get('norm_test_mean', float('nan')), 3)}")
    return lines
