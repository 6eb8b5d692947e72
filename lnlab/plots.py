"""Figures of the notebook suite: one function per figure, each returns a ``matplotlib.figure.Figure``.

The functions take plain data (pandas DataFrames, dicts of arrays / tensors) so they can be
tested without training; thin helpers turn :class:`lnlab.runs.Run` objects into that data.
Figures are built with ``matplotlib.figure.Figure`` (no pyplot state), so a notebook shows a
figure exactly once (when it is the cell's value) and nothing leaks between calls.

Style: seaborn's colour-blind-safe palette, sizes for a paper column (3.4 in) or a full
page width (7 in), 8-pt fonts. :func:`save_figure` writes PDF + PNG into ``figures/``.
"""

from __future__ import annotations

import math
import os
import textwrap
import warnings
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogFormatter

from lnlab.atomic import atomic_write
from lnlab.paths import figures_root

SINGLE_COLUMN = 3.4  # inches: one column of a two-column paper
DOUBLE_COLUMN = 7.0  # inches: full page width
PNG_DPI = 200
PALETTE = "colorblind"
NORM_STATS = ("mean", "median", "p10", "p90")
_SPLIT_TITLES = {"train": "train (un-augmented subset)", "test": "ID test"}
_SCORE_LABELS = {
    "msp": "MSP: max softmax probability",
    "energy": "energy score: T·logsumexp(f/T)",
    "max_logit": "max logit",
    "logit_norm": "logit norm ‖f(x)‖₂",
}
SHORT_SCORES = {"msp": "MSP", "energy": "energy", "max_logit": "max logit", "logit_norm": "‖f‖"}  # panel labels
_STYLE = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.title_fontsize": 7,
    "figure.dpi": 100,
    "savefig.dpi": PNG_DPI,
    "savefig.bbox": "tight",
    "pdf.fonttype": 42,  # embed TrueType: editable text in the PDF
    "lines.linewidth": 1.4,
}


@contextmanager
def paper_style() -> Iterator[None]:
    """Apply the suite's style (seaborn ``ticks`` + ``colorblind`` palette, 8-pt fonts) inside a block."""
    with sns.axes_style("ticks", {"axes.grid": True, "grid.color": "0.9"}), matplotlib.rc_context(_STYLE):
        yield


def colors(n: int) -> list[tuple[float, float, float]]:
    """``n`` colours of the colour-blind-safe palette."""
    return sns.color_palette(PALETTE, max(n, 1))


def new_figure(ncols: int = 1, nrows: int = 1, width: float = DOUBLE_COLUMN, height: float = 2.3,
               **subplot_kw: Any) -> tuple[Figure, np.ndarray]:
    """A pyplot-free figure ``width`` x ``height`` inches with an ``nrows`` x ``ncols`` grid of axes."""
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    return fig, axes


# --------------------------------------------------------------------------- saving


def save_figure(fig: Figure, name: str, folder: str | os.PathLike | None = None,
                formats: Sequence[str] = ("pdf", "png")) -> list[Path]:
    """Write ``fig`` as ``<folder>/<name>.pdf`` and ``.png`` (200 dpi), each atomically.

    ``folder`` defaults to :func:`lnlab.paths.figures_root` (``$LNLAB_FIGURES`` or ``figures/``).
    By convention ``name`` is ``"<notebook-stem>_<figure>"``, e.g. ``"01_logit_norm_growth_norm"``.
    With ``$LNLAB_STRICT_LAYOUT=1`` a figure whose texts overlap is refused (:mod:`lnlab.layout`).
    """
    if not name or os.sep in name or "/" in name:
        raise ValueError(f"name must be a plain file stem like '01_logit_norm_growth_norm', got {name!r}")
    from lnlab.layout import check_layout

    with matplotlib.rc_context(_STYLE):
        check_layout(fig, name)  # $LNLAB_STRICT_LAYOUT=1: no two texts overlap (the suite's layout test)
    target = figures_root(folder)
    paths = []
    for fmt in formats:
        path = target / f"{name}.{fmt}"
        with matplotlib.rc_context(_STYLE):
            atomic_write(path, lambda handle, fmt=fmt: fig.savefig(handle, format=fmt, dpi=PNG_DPI))
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- data helpers


def history_frame(history: pd.DataFrame | Sequence[Mapping[str, Any]] | Any) -> pd.DataFrame:
    """A run history as a DataFrame indexed by epoch (accepts a DataFrame, a list of dicts or a Run)."""
    if hasattr(history, "history_frame"):
        return history.history_frame()
    frame = history if isinstance(history, pd.DataFrame) else pd.DataFrame(list(history))
    if "epoch" in frame.columns:
        frame = frame.set_index("epoch")
    return frame


def norm_splits(frame: pd.DataFrame) -> list[str]:
    """Splits with logit-norm statistics in a history (``norm_<split>_mean`` columns): train, test, then OOD."""
    found = [c[len("norm_"):-len("_mean")] for c in frame.columns if c.startswith("norm_") and c.endswith("_mean")]
    order = {"train": 0, "test": 1}
    return sorted(found, key=lambda s: (order.get(s, 2), found.index(s)))


def default_norm_sets(histories: Iterable[Any]) -> list[str]:
    """The sets a norm figure or table shows by default: train, test, then the OOD sets, every set any
    of ``histories`` (Runs, DataFrames) has, in the order a run tracked them (``Run.history_sets``;
    column order for plain data); not the validation sets ("val", "gaussian_val", "val_pixels", …),
    which stay drawable on request (``splits=[...]``)."""
    from lnlab.splits import VALIDATION_OOD_SETS

    hidden = {"val", *VALIDATION_OOD_SETS}
    found: list[str] = []
    for history in histories:
        own = history.history_sets if hasattr(history, "history_sets") else norm_splits(history_frame(history))
        found += [s for s in own if s not in hidden and s not in found]
    order = {"train": 0, "test": 1}
    return sorted(found, key=lambda s: (order.get(s, 2), found.index(s)))


# What a user can do about a set missing from a run's per-epoch history (the end of one warning line).
NO_HISTORY_HINT = ("history is recorded while training (retrain it for full history: `lnlab train --force`); "
                   "final norms of a new set come from the weights (`Run.logits_for`)")


def _has_set(frame: pd.DataFrame, name: str) -> bool:
    column = f"norm_{name}_mean"
    return column in frame.columns and bool(frame[column].notna().any())


def describe_run(label: str, source: Any, seed: bool = False) -> str:
    """How a warning names a run: ``"CE (run 1f2e…)"``, ``"CE seed 1 (run …)"``, or the label of plain data."""
    if not hasattr(source, "history_frame") or isinstance(source, pd.DataFrame):
        return label
    name = f"{label} seed {source.config.seed}" if seed else label
    key = getattr(source, "key", None)
    return f"{name} (run {key})" if key else name


def _members(label: str, source: Any) -> list[tuple[str, pd.DataFrame, Any]]:
    """``(description, history, source)`` of each run behind a label (one per seed of a ``Seeds`` list)."""
    if isinstance(source, list) and source and all(hasattr(run, "history_frame") for run in source):
        return [(describe_run(label, run, seed=len(source) > 1), run.history_frame(), run) for run in source]
    return [(describe_run(label, source), history_frame(source), source)]


def _asked_sets(members: Mapping[str, Sequence[tuple[str, pd.DataFrame, Any]]], splits: Sequence[str] | None) -> list[str]:
    """``splits``, or by default :func:`default_norm_sets` of every run behind ``members``."""
    if splits is not None:
        return list(splits)
    return default_norm_sets(source if hasattr(source, "history_sets") else frame
                             for group in members.values() for _, frame, source in group)


def _lacking(members: Mapping[str, Sequence[tuple[str, pd.DataFrame, Any]]], sets: Sequence[str]) -> dict[str, list[str]]:
    """``{run description: [asked-for sets its history lacks]}`` (runs lacking none left out)."""
    lacking = {}
    for group in members.values():
        for description, frame, _ in group:
            missing = [s for s in sets if not _has_set(frame, s)]
            if missing:
                lacking[description] = missing
    return lacking


def _seed_frames(members: Mapping[str, Sequence[tuple[str, pd.DataFrame, Any]]]) -> tuple[dict[str, pd.DataFrame], int]:
    """The history drawn per label (one run's, or the seeds' mean and range: :func:`seed_spread`) and
    the largest number of seeds of a label."""
    seeds = max(len(group) for group in members.values())
    if seeds == 1:
        return {label: group[0][1] for label, group in members.items()}, 1
    return {label: seed_spread([frame for _, frame, _ in group]) for label, group in members.items()}, seeds


def _drawable_sets(frames: Mapping[str, pd.DataFrame], members: Mapping[str, Sequence[tuple[str, pd.DataFrame, Any]]],
                   asked: Sequence[str]) -> list[str]:
    """The asked-for sets some history has (ValueError if none); one warning line for what runs lack."""
    shown = [s for s in asked if any(_has_set(frame, s) for frame in frames.values())]
    if not shown:
        raise ValueError(f"no history has a norm_<split>_mean column for {list(asked)}; pass splits from "
                         f"{sorted({s for f in frames.values() for s in norm_splits(f)})}")
    lacking = _lacking(members, asked)
    if lacking:
        runs = "; ".join(f"{description} has no per-epoch history for {sets}" for description, sets in lacking.items())
        warnings.warn(f"{runs}: {NO_HISTORY_HINT}", stacklevel=3)
    return shown


def recipe_line(runs: Any) -> str | None:
    """The training set, recipe and seeds a figure shows, e.g.
    ``"CIFAR-10, laptop recipe: airnet, 60 epochs, cpu · seeds 0, 1, 2"``.

    ``runs``: ``{label: Run or Seeds}``, a list of Runs, one Run or ``Seeds``. The profile is named when
    the run's training fields are exactly a profile's (:mod:`lnlab.profiles`); the device is the one the
    run was trained on (its provenance) where recorded. None for plain data (dicts of logits).
    """
    from lnlab.evaluate import runs_of

    groups = runs.values() if isinstance(runs, Mapping) else [runs] if hasattr(runs, "config") else runs
    members = [run for group in groups for run in runs_of(group) if hasattr(run, "config")]
    if not members:
        return None
    recipes = " | ".join(dict.fromkeys(_recipe(run) for run in members))
    seeds = sorted({int(run.config.seed) for run in members if run.config.seed is not None})  # None: not known
    if not seeds:
        return recipes
    text = f"{recipes} · seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
    if isinstance(runs, Mapping):  # groups with fewer seeds than the others say which they have
        fewer = {label: sorted({int(r.config.seed) for r in runs_of(group)
                                if hasattr(r, "config") and r.config.seed is not None})
                 for label, group in runs.items()}
        fewer = {label: own for label, own in fewer.items() if own and own != seeds}
        if fewer:
            groups: dict[tuple, list[str]] = {}
            for label, own in fewer.items():
                groups.setdefault(tuple(own), []).append(label)
            text += " (" + "; ".join(f"{_label_list(labels)}: seed{'s' if len(own) > 1 else ''} "
                                     f"{', '.join(map(str, own))}" for own, labels in groups.items()) + ")"
    return text


def _label_list(labels: list[str]) -> str:
    """``["LogitNorm τ=0.01", "LogitNorm τ=0.02"]`` -> ``"LogitNorm τ=0.01, 0.02"`` (a shared prefix up to "=" once)."""
    prefix = os.path.commonprefix(labels) if len(labels) > 1 else ""
    prefix = prefix[: prefix.rfind("=") + 1]
    return prefix + ", ".join(label[len(prefix):] for label in labels)


def _recipe(run: Any) -> str:
    config = run.config
    if callable(getattr(config, "recipe", None)):  # a network lnlab did not train describes itself (lnlab.foreign)
        return config.recipe()
    from lnlab.data import display_name

    device = (getattr(run, "provenance", None) or {}).get("device") or config.resolved_device()
    profile = _profile_of(config)
    return (f"{display_name(config.dataset)}, {profile + ' ' if profile else ''}recipe: {config.model}, "
            f"{config.epochs} epochs, {device}")


def _profile_of(config: Any) -> str | None:
    """The profile whose training fields ``config`` has (loss, τ, seed, device and evaluation fields aside)."""
    from lnlab.config import EVALUATION_FIELDS
    from lnlab.profiles import PROFILES, make_config

    own = {name: getattr(config, name) for name in ("dataset", "loss", "tau", "penalty", "smoothing", "seed", "device",
                                                     "data_root", *EVALUATION_FIELDS)}
    for name in PROFILES:
        try:
            if make_config(name, **own) == config:
                return name
        except ValueError:
            continue
    return None


SUBTITLE_POINTS = 7


def wrap_subtitle(text: str, width: float) -> str:
    """``text`` with every line longer than a figure ``width`` inches wide wrapped at its spaces (a line of a
    many-run figure can name every group's seeds); its own line breaks are kept."""
    chars = max(40, int(width * 72 / (0.55 * SUBTITLE_POINTS)))  # ~0.55 em per character
    return "\n".join(wrapped for line in text.split("\n")
                     for wrapped in textwrap.wrap(line, chars, break_long_words=False, break_on_hyphens=False) or [""])


def add_subtitle(fig: Figure, text: str | None) -> None:
    """Write ``text`` (dataset, recipe, seeds) small and grey above the panels; nothing when it is empty.
    Wrapped to the figure's width (:func:`wrap_subtitle`), so the subtitle never widens the figure."""
    if text:
        fig.suptitle(wrap_subtitle(text, fig.get_figwidth()), fontsize=SUBTITLE_POINTS, color="0.35")


def to_numpy(values: Any) -> np.ndarray:
    """Scores as a flat float64 array, from a tensor (any device or dtype) or anything array-like."""
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().numpy()
    return np.asarray(values, dtype=np.float64).ravel()


def ood_names(runs: Mapping[str, Any]) -> list[str]:
    """OOD sets of the runs' configs (``config.ood``), or the OOD keys of dicts of logits, in first-run order."""
    from lnlab.evaluate import default_oods

    names = [default_oods({label: run}) for label, run in runs.items()]
    return [name for name in names[0] if all(name in other for other in names[1:])] if names else []


def score_sets(runs: Mapping[str, Any], ood: str, score_name: str = "msp",
               temperature: float | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """ID-test and OOD scores per run: ``({label: id}, {label: ood})`` (first seed of a ``Seeds``).

    ``runs`` maps a label to a Run (logits from ``Run.logits_for``) or to a dict of logits with a
    ``"test"`` key. Higher score = more in-distribution (see :func:`lnlab.scores.score`).
    """
    from lnlab.evaluate import logits_of
    from lnlab.scores import score

    kwargs = {} if temperature is None else {"temperature": temperature}
    id_scores, ood_scores = {}, {}
    for label, run in runs.items():
        id_scores[label] = to_numpy(score(score_name, logits_of(run, "test"), **kwargs))
        ood_scores[label] = to_numpy(score(score_name, logits_of(run, ood), **kwargs))
    return id_scores, ood_scores


def norm_table(histories: Mapping[str, Any], splits: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean logit norm per run and split at the first and the last epoch, and their ratio (growth).

    ``histories`` maps a label to a history, a Run or ``Seeds`` (its first seed). ``splits`` defaults
    to :func:`default_norm_sets`; a set a history lacks is left out with one warning saying why.
    """
    first = {label: h[0] if isinstance(h, list) and h and hasattr(h[0], "history_frame") else h
             for label, h in histories.items()}
    members = {label: _members(label, h) for label, h in first.items()}
    frames = {label: group[0][1] for label, group in members.items()}
    sets = _drawable_sets(frames, members, _asked_sets(members, splits))
    rows = []
    for label, frame in frames.items():
        for split in sets:
            if _has_set(frame, split):
                first_epoch, last_epoch = frame[f"norm_{split}_mean"].iloc[[0, -1]]
                rows.append({"run": label, "split": split, "first epoch": first_epoch, "last epoch": last_epoch,
                             "last / first": last_epoch / first_epoch})
    return pd.DataFrame(rows).set_index(["run", "split"]).round(3)


def save_table(table: pd.DataFrame, name: str, folder: str | os.PathLike | None = None) -> Path:
    """Write ``table`` as ``<folder>/<name>.csv`` atomically (same folder and naming as :func:`save_figure`)."""
    path = figures_root(folder) / f"{name}.csv"
    return atomic_write(path, lambda handle: handle.write(table.to_csv().encode("utf-8")))


# --------------------------------------------------------------------------- figure 1: norm vs epoch


def plot_norm_vs_epoch(histories: Mapping[str, Any], splits: Sequence[str] | None = None,
                       log_y: bool = True, band: bool = True, width: float = DOUBLE_COLUMN,
                       band_label: str = "10–90% of samples", subtitle: str | None = None) -> Figure:
    """Mean raw logit norm ``‖f(x)‖₂`` vs epoch, one panel per split, one colour per run (paper Fig. 2 / Sec. 3).

    ``histories`` maps a label (e.g. ``"CE"``, ``"LogitNorm τ=0.04"``) to a history
    (DataFrame indexed by epoch, list of dicts, or a Run) with ``norm_<split>_{mean,p10,p90}``.
    A ``Seeds`` list (several runs) draws the mean over seeds with their lowest-to-highest mean
    norm as the band. ``splits`` defaults to :func:`default_norm_sets`: train, ID test, then the OOD
    sets. A set some history lacks is drawn for the others, and one warning line names what is missing and why.
    The shaded band spans the 10th-90th percentile. A log y axis keeps CE's steady growth
    visible next to LogitNorm's early spike. ``subtitle``: e.g. :func:`recipe_line`.
    """
    if not histories:
        raise ValueError("histories is empty: pass {label: history DataFrame}, e.g. {'CE': run.history_frame()}")
    members = {label: _members(label, h) for label, h in histories.items()}
    frames, seeds = _seed_frames(members)
    if seeds > 1:
        band_label = f"range over {seeds} seeds"
    splits = _drawable_sets(frames, members, _asked_sets(members, splits))
    nrows = math.ceil(len(splits) / 4)
    ncols = math.ceil(len(splits) / nrows)  # 6 splits: 2 x 3, not 2 x 4 with two empty panels
    with paper_style():
        fig, axes = new_figure(ncols, nrows, width=width, height=1.9 * nrows + 0.4 + 0.2 * bool(subtitle),
                               sharey=True)
        palette = colors(len(frames))
        for i, split in enumerate(splits):
            ax = axes.flat[i]
            absent = []
            for color, (label, frame) in zip(palette, frames.items()):
                if not _has_set(frame, split):
                    absent.append(label)
                    continue
                epochs = frame.index.to_numpy()
                ax.plot(epochs, frame[f"norm_{split}_mean"].to_numpy(), color=color, label=label, marker=".",
                        markersize=3)
                if band and {f"norm_{split}_p10", f"norm_{split}_p90"} <= set(frame.columns):
                    ax.fill_between(epochs, frame[f"norm_{split}_p10"], frame[f"norm_{split}_p90"],
                                    color=color, alpha=0.2, linewidth=0)
            if absent:
                ax.text(0.97, 0.03, "no history: " + ", ".join(absent), transform=ax.transAxes, ha="right",
                        va="bottom", fontsize=6, color="0.4")
            _epoch_panel(ax, split, log_y)
        for ax in axes[:, 0]:
            ax.set_ylabel("logit norm ‖f(x)‖₂ (unitless)")
        for ax in axes.flat[len(splits):]:
            ax.set_visible(False)
        handles = list(unique_handles(axes.flat[:len(splits)]).values())
        handles.append(Patch(color="0.6", alpha=0.4, label=band_label))
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
        add_subtitle(fig, subtitle)
    return fig


def _epoch_panel(ax: Any, split: str, log_y: bool) -> None:
    """Title (the set), x label and y scale of one panel of a per-epoch norm figure."""
    ax.set_title(_SPLIT_TITLES.get(split, f"OOD: {split}"))
    ax.set_xlabel("epoch")
    if log_y:
        _log_y(ax)


def _log_y(ax: Axes) -> None:
    """A log y axis labelled in plain numbers (5, 10, 50, not 5×10⁰, 10¹); minor ticks labelled only
    when the axis spans about a decade or less (matplotlib's thinning)."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))


def unique_handles(axes: Iterable[Axes]) -> dict[str, Any]:
    """``{label: handle}`` of every labelled artist of ``axes``, first occurrence kept (a legend for the figure)."""
    found: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            found.setdefault(label, handle)
    return found


# --------------------------------------------------------------------------- figure 2: score histograms


def plot_msp_histograms(id_scores: Mapping[str, Any], ood_scores: Mapping[str, Any], ood_name: str = "OOD",
                        score_name: str = "msp", metrics: Mapping[str, Mapping[str, float]] | None = None,
                        bins: int = 40, width: float = DOUBLE_COLUMN, subtitle: str | None = None) -> Figure:
    """Density of a score on ID test vs OOD data, one panel per run (CE left, LogitNorm right; paper Fig. 1/3).

    ``id_scores`` / ``ood_scores`` map the same run labels to 1-D score arrays (higher = more ID).
    Each panel prints FPR95 and AUROC in % (from ``metrics`` or :func:`lnlab.metrics.ood_metrics`).
    ``subtitle``: e.g. :func:`recipe_line`.
    """
    if not id_scores or set(id_scores) != set(ood_scores):
        raise ValueError("pass id_scores and ood_scores as dicts with the same run labels, "
                         "e.g. {'CE': ..., 'LogitNorm': ...}")
    if metrics is None:
        from lnlab.metrics import ood_metrics

        metrics = {label: ood_metrics(id_scores[label], ood_scores[label]) for label in id_scores}
    data = {label: (to_numpy(id_scores[label]), to_numpy(ood_scores[label])) for label in id_scores}
    edges = shared_bins(score_name, data.values(), bins)
    with paper_style():
        n = len(data)
        fig, axes = new_figure(n, 1, width=width if n > 1 else SINGLE_COLUMN, height=2.2, sharex=True)
        id_color, ood_color = colors(2)
        for ax, (label, (ids, oods)) in zip(axes.flat, data.items()):
            sns.histplot(ids, bins=edges, stat="density", color=id_color, alpha=0.5, element="step",
                         label="ID: test", ax=ax)
            sns.histplot(oods, bins=edges, stat="density", color=ood_color, alpha=0.5, element="step",
                         label=f"OOD: {ood_name}", ax=ax)
            m = metrics[label]
            ax.text(0.03, 0.96,
                    f"FPR95 {100 * m['fpr95']:.1f}%\nAUROC {100 * m['auroc']:.1f}%",
                    transform=ax.transAxes, va="top", ha="left",
                    bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.7", "alpha": 0.9})
            ax.set_title(_wrapped(label) if n > 2 else label)
            # more than two panels: a short x label each and one y label, so that neighbours do not collide
            ax.set_xlabel(score_axis_label(score_name) if n <= 2 else SHORT_SCORES.get(score_name, score_name))
            ax.set_ylabel("density (1 / score unit)" if ax is axes.flat[0] or n <= 2 else "")
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=2, frameon=False)
        add_subtitle(fig, subtitle)
    return fig


def _wrapped(label: str, width: int = 16) -> str:
    """A run label on two lines at its last space when it is longer than ``width`` characters."""
    return label if len(label) <= width or " " not in label else "\n".join(label.rsplit(" ", 1))


def score_axis_label(score_name: str) -> str:
    """The x-axis label of a score histogram (MSP in probability, the others in logit units)."""
    label = _SCORE_LABELS.get(score_name, score_name)
    return label + (" (probability)" if score_name == "msp" else " (logit units)")


def shared_bins(score_name: str, pairs: Iterable[tuple[np.ndarray, np.ndarray]], bins: int) -> np.ndarray:
    """Histogram edges every panel of one score figure shares: [0, 1] for MSP, else the 0.5-99.5th
    percentiles of all ``(id, ood)`` score arrays (so that one outlier does not squash the others)."""
    if score_name == "msp":
        return np.linspace(0.0, 1.0, bins + 1)
    values = np.concatenate([np.concatenate(pair) for pair in pairs])
    values = values[np.isfinite(values)]
    low, high = np.percentile(values, [0.5, 99.5]) if values.size else (0.0, 1.0)
    if high <= low:
        high = low + 1.0
    return np.linspace(low, high, bins + 1)


# --------------------------------------------------------------------------- Run conveniences


def label_runs(runs: Iterable[Any]) -> dict[str, Any]:
    """``{run.config.label(): run}`` for a list of Runs (CE first, then LogitNorm by τ)."""
    ordered = sorted(runs, key=lambda r: (str(r.config.loss).lower() != "ce", float(getattr(r.config, "tau", 0))))
    return {run.config.label(): run for run in ordered}


def plot_runs_norm_vs_epoch(runs: Mapping[str, Any] | Iterable[Any], **kwargs: Any) -> Figure:
    """:func:`plot_norm_vs_epoch` from Runs (a dict ``{label: Run or Seeds}`` or a list of Runs), with the
    recipe and seeds as its subtitle (:func:`recipe_line`).

    With several seeds per label the line is the mean over seeds and the band spans the seeds'
    lowest to highest mean norm (the spread over seeds) instead of the sample percentiles.
    """
    from lnlab.evaluate import runs_of

    runs = runs if isinstance(runs, Mapping) else label_runs(runs)
    kwargs.setdefault("subtitle", recipe_line(runs))
    return plot_norm_vs_epoch({label: runs_of(group) for label, group in runs.items()}, **kwargs)


def seed_spread(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Histories of several seeds as one: ``norm_<split>_mean`` averaged, ``_p10`` / ``_p90`` = its min / max over seeds."""
    means = pd.concat([f.filter(like="_mean") for f in frames], keys=range(len(frames)))
    grouped = means.groupby(level=1)
    spread = grouped.mean()
    for column in means.columns:
        stem = column[: -len("_mean")]
        spread[f"{stem}_p10"], spread[f"{stem}_p90"] = grouped[column].min(), grouped[column].max()
    return spread


def plot_runs_histograms(runs: Mapping[str, Any], ood: str, score_name: str = "msp",
                         temperature: float | None = None, **kwargs: Any) -> Figure:
    """:func:`plot_msp_histograms` from cached logits of Runs (or dicts of logits), first seed of a ``Seeds``,
    with the recipe and seed as its subtitle (:func:`recipe_line`)."""
    from lnlab.evaluate import runs_of

    id_scores, ood_scores = score_sets(runs, ood, score_name, temperature)
    kwargs.setdefault("subtitle", recipe_line({label: runs_of(group)[0] for label, group in runs.items()}))
    return plot_msp_histograms(id_scores, ood_scores, ood_name=ood, score_name=score_name, **kwargs)


# --------------------------------------------------------------------------- what the loss sees: effective norm


def plot_effective_norm(runs: Mapping[str, Any] | Iterable[Any], splits: Sequence[str] = ("train", "test"),
                        log_y: bool = True, width: float = DOUBLE_COLUMN) -> Figure:
    """The logit norm each loss sees next to the raw norm, per epoch (paper Eq. 6-7, Sec. 4).

    CE (and the logit penalty, label smoothing) applies softmax to the raw logits, so it sees ``‖f‖``
    (solid). LogitNorm applies it to ``f / (τ‖f‖)``, whose norm is exactly ``1/τ`` for every input and
    epoch (solid, flat): the loss controls that and nothing else; ELogitNorm to ``f / s(x)`` (recorded per
    epoch, :func:`seen_norm`). Its raw norm ``‖f‖`` (dashed) is what MSP and the other scores
    read (raw logits, as in the official code); it is not what the loss sees, so a LogitNorm raw norm
    above CE's is no contradiction. ``runs``: ``{label: Run or Seeds}`` (seeds: their mean) or a list
    of Runs; one panel per set of ``splits`` (sets a run lacks: one warning line, as in
    :func:`plot_norm_vs_epoch`). Subtitle: :func:`recipe_line`.
    """
    from lnlab.evaluate import runs_of

    runs = runs if isinstance(runs, Mapping) else label_runs(runs)
    groups = {label: runs_of(group) for label, group in runs.items()}
    if not groups or not all(hasattr(run, "config") and hasattr(run, "history_frame")
                             for group in groups.values() for run in group):
        raise ValueError("pass Runs, e.g. suite.main_pair(runs): the effective norm needs each run's loss and τ "
                         "(run.config) and its history")
    members = {label: _members(label, group) for label, group in groups.items()}
    frames, _ = _seed_frames(members)
    shown = _drawable_sets(frames, members, list(splits))
    with paper_style():
        n = len(shown)
        fig, axes = new_figure(n, 1, width=width if n > 1 else SINGLE_COLUMN * 1.4, height=2.9, sharey=True)
        palette = colors(len(frames))
        for ax, split in zip(axes.flat, shown):
            for color, (label, frame) in zip(palette, frames.items()):
                if not _has_set(frame, split):
                    continue
                epochs, raw = frame.index.to_numpy(), frame[f"norm_{split}_mean"].to_numpy()
                config = groups[label][0].config
                seen = seen_norm(frame, config, split)
                if seen is None or np.allclose(seen, raw, rtol=1e-6, equal_nan=True):
                    ax.plot(epochs, raw, color=color, marker=".", markersize=3,
                            label=f"{label}: raw ‖f‖ (no normalisation: what the loss sees)")
                    continue
                what = f"‖f/(τ‖f‖)‖ = 1/τ = {1 / float(config.tau):g}" if config.loss == "logitnorm" else "‖f/s(x)‖"
                ax.plot(epochs, seen, color=color, label=f"{label}: {what} (what the loss sees)")
                ax.plot(epochs, raw, color=color, linestyle="--", marker=".", markersize=3,
                        label=f"{label}: raw ‖f‖ (not what the loss sees; scores use it)")
            _epoch_panel(ax, split, log_y)
        axes[0, 0].set_ylabel("logit norm (unitless)")
        handles = list(unique_handles(axes.flat).values())
        fig.legend(handles=handles, loc="outside lower center", ncols=1 if n == 1 else 2, frameon=False)
        add_subtitle(fig, recipe_line(runs))
    return fig


def seen_norm(frame: pd.DataFrame, config: Any, split: str) -> np.ndarray | None:
    """Per epoch, the mean norm of the logits the loss's softmax sees (``lnlab.losses.TrainingLoss.seen_logits``):
    the recorded ``seen_<split>_mean`` column, else what the loss implies (the raw norm for CE, the logit
    penalty and label smoothing; 1/τ for LogitNorm), else None (ELogitNorm runs made before it was recorded)."""
    if f"seen_{split}_mean" in frame and frame[f"seen_{split}_mean"].notna().all():
        return frame[f"seen_{split}_mean"].to_numpy()
    loss = str(getattr(config, "loss", "ce")).lower()
    if loss == "logitnorm":
        return np.full(len(frame), 1.0 / float(config.tau))
    return frame[f"norm_{split}_mean"].to_numpy() if loss in ("ce", "logit_penalty", "label_smoothing") else None


# --------------------------------------------------------------------------- calibration: reliability diagrams


def plot_reliability_diagrams(panels: Mapping[str, Mapping[str, np.ndarray]], ece: Mapping[str, float] | None = None,
                              width: float = DOUBLE_COLUMN, subtitle: str | None = None) -> Figure:
    """Reliability diagrams side by side (Guo et al. 2017), one column per entry of ``panels``.

    ``panels`` maps a title to :func:`lnlab.metrics.reliability_bins` output. Top row: accuracy per
    confidence bin (bars) against the diagonal of perfect calibration, the gap to the bin's mean
    confidence hatched (red: overconfident, bin below the diagonal; blue: underconfident); the
    panel prints the ECE (from ``ece`` or recomputed from the bins). Bottom row: share of samples
    per bin, which is how much each gap weighs in the ECE. ``subtitle``: e.g. :func:`recipe_line`.
    """
    if not panels:
        raise ValueError("panels is empty: pass {title: reliability_bins(probabilities, labels)}")
    n = len(panels)
    over, under = sns.color_palette(PALETTE)[3], sns.color_palette(PALETTE)[0]
    with paper_style():
        fig, axes = new_figure(n, 2, width=width, height=3.3, sharex=True, sharey="row",
                               gridspec_kw={"height_ratios": [3, 1]})
        for i, (title, bins) in enumerate(panels.items()):
            ax, ax_count = axes[0, i], axes[1, i]
            lower, upper = np.asarray(bins["bin_lower"]), np.asarray(bins["bin_upper"])
            count = np.asarray(bins["count"], dtype=np.float64)
            filled = count > 0
            centres, widths = (lower + upper) / 2, upper - lower
            acc, conf = np.asarray(bins["accuracy"]), np.asarray(bins["confidence"])
            ax.bar(centres[filled], acc[filled], width=widths[filled], color="0.55", edgecolor="0.2", linewidth=0.5,
                   label="accuracy in the bin")
            gap_color = [over if c > a else under for a, c in zip(acc[filled], conf[filled])]
            ax.bar(centres[filled], conf[filled] - acc[filled], bottom=acc[filled], width=widths[filled],
                   color="none", edgecolor=gap_color, hatch="////", linewidth=0.6)
            ax.plot([0, 1], [0, 1], color="black", linestyle="--", linewidth=0.9)
            value = ece[title] if ece is not None and title in ece else float(
                np.sum(count[filled] / count.sum() * np.abs(acc[filled] - conf[filled])))
            ax.text(0.04, 0.96, f"ECE {100 * value:.1f}%\nn = {int(count.sum())}", transform=ax.transAxes,
                    va="top", ha="left",
                    bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.7", "alpha": 0.9})
            ax.set(xlim=(0, 1), ylim=(0, 1), title=title)
            ax_count.bar(centres, count / count.sum(), width=widths, color="0.55", edgecolor="0.2", linewidth=0.5)
            ax_count.set(xlabel="confidence (MSP)")
        axes[0, 0].set_ylabel("accuracy (fraction correct)")
        axes[1, 0].set_ylabel("share of\nsamples")
        shares = [np.asarray(b["count"]) / max(int(np.sum(b["count"])), 1) for b in panels.values()]
        axes[1, 0].set_ylim(0, min(1.0, 1.15 * max(float(share.max()) for share in shares)))
        handles = [Patch(facecolor="0.55", edgecolor="0.2", label="accuracy in the confidence bin"),
                   Patch(facecolor="none", edgecolor=over, hatch="////", label="gap: overconfident"),
                   Patch(facecolor="none", edgecolor=under, hatch="////", label="gap: underconfident"),
                   Line2D([], [], color="black", linestyle="--", label="perfect calibration")]
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
        add_subtitle(fig, subtitle)
    return fig
