"""How overconfidence develops along training (paper Sec. 3, Fig. 1): a score's OOD metrics at each epoch whose
logits a run stores (its snapshots at 10, 25, 50 and 100 % of training), and the figure of them (notebook 02).
Style and figure helpers: :mod:`lnlab.plots`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from lnlab.plots import (DOUBLE_COLUMN, SHORT_SCORES, add_subtitle, colors, describe_run, label_runs, new_figure,
                         ood_names, paper_style, recipe_line, to_numpy, unique_handles)


def snapshot_metrics(runs: Mapping[str, Any] | Iterable[Any], oods: Sequence[str] | None = None,
                     score_name: str = "msp", temperature: float | None = None) -> pd.DataFrame:
    """A score's OOD metrics at each epoch whose logits a run stores (``Run.snapshot_epochs``).

    ``runs``: ``{label: Run or Seeds}`` or a list of Runs; ``oods`` default to :func:`lnlab.plots.ood_names`.
    Long format, one row per (run, seed, epoch, set, metric): ``metric`` is ``"fpr95"`` and
    ``"auroc"`` (fractions, :func:`lnlab.metrics.ood_metrics` of ID test vs the OOD set) for each
    OOD set, and ``"mean_score"`` (mean of the score, e.g. mean MSP) for the test set and each OOD
    set. Logit scores only (:data:`lnlab.scores.LOGIT_SCORES`); logits a run does not store are
    skipped with one warning line.
    """
    from lnlab.evaluate import runs_of
    from lnlab.metrics import ood_metrics
    from lnlab.scores import LOGIT_SCORES, score

    if score_name not in LOGIT_SCORES:
        raise ValueError(f"score {score_name!r} needs the network at every epoch; pass one of {list(LOGIT_SCORES)}")
    runs = runs if isinstance(runs, Mapping) else label_runs(runs)
    groups = {label: runs_of(group) for label, group in runs.items()}
    if not groups or not all(hasattr(run, "snapshot_epochs") for group in groups.values() for run in group):
        raise ValueError("pass Runs (lnlab.runs.Run): logits along training are stored with a run (Run.snapshot)")
    oods = list(oods) if oods is not None else ood_names(runs)
    kwargs = {} if temperature is None else {"temperature": temperature}
    rows, lacking, last_only = [], {}, []
    for label, group in groups.items():
        for run in group:
            description = describe_run(label, run, seed=len(group) > 1)
            if len(run.snapshot_epochs) == 1:
                last_only.append(description)
            for epoch in run.snapshot_epochs:
                values = {}
                for name in ("test", *oods):
                    try:
                        logits = run.snapshot(epoch, name)
                    except ValueError:  # not stored at this epoch (or, without weights, at all)
                        lacking.setdefault(description, {}).setdefault(name, []).append(epoch)
                        continue
                    values[name] = to_numpy(score(score_name, logits, **kwargs))
                if "test" not in values:
                    continue
                seed = int(run.config.seed) if run.config.seed is not None else group.index(run)  # None: not known
                for name, scores in values.items():
                    rows.append((label, seed, epoch, name, "mean_score", float(scores.mean())))
                    if name != "test":
                        m = ood_metrics(values["test"], scores)
                        rows += [(label, seed, epoch, name, "fpr95", m["fpr95"]),
                                 (label, seed, epoch, name, "auroc", m["auroc"])]
    notes = [f"{d} has no stored logits of {name} at epochs {e}" for d, sets in lacking.items()
             for name, e in sets.items()]
    notes += [f"{d} stores logits at its last epoch only" for d in last_only]
    if notes:
        warnings.warn("; ".join(notes) + ": logits along training are stored while training (the test and "
                      "tracked OOD sets at 10/25/50/100% of the epochs; runs of older code keep the last epoch "
                      "only); retrain a run for them: `lnlab train --force`", stacklevel=2)
    return pd.DataFrame(rows, columns=["run", "seed", "epoch", "set", "metric", "value"])


def plot_metrics_vs_epoch(runs: Mapping[str, Any] | Iterable[Any] | pd.DataFrame, oods: Sequence[str] | None = None,
                          score_name: str = "msp", temperature: float | None = None,
                          width: float = DOUBLE_COLUMN) -> Figure:
    """How overconfidence develops: FPR95, AUROC and the mean score against the epoch (paper Sec. 3, Fig. 1).

    One column per OOD set; rows: FPR95 and AUROC of ``score_name`` (ID test vs that set, in %),
    and the mean score on the set (solid) and on the ID test set (dotted). One colour per run; with
    several seeds (``Seeds``) the line is their mean and the band their range. Points are the
    epochs whose logits the runs store (:func:`snapshot_metrics`; or pass its table). Subtitle:
    :func:`lnlab.plots.recipe_line`.
    """
    table = runs if isinstance(runs, pd.DataFrame) else snapshot_metrics(runs, oods, score_name, temperature)
    subtitle = None if isinstance(runs, pd.DataFrame) else recipe_line(
        runs if isinstance(runs, Mapping) else label_runs(runs))
    sets = [name for name in dict.fromkeys(table["set"]) if name != "test" and (oods is None or name in oods)]
    if not sets:
        raise ValueError("no OOD set with stored logits to draw: pass oods=[...] that the runs store")
    labels = list(dict.fromkeys(table["run"]))
    stats = table.groupby(["run", "set", "metric", "epoch"])["value"].agg(["mean", "min", "max"])
    seeds = int(table.groupby("run")["seed"].nunique().max())
    short = SHORT_SCORES.get(score_name, score_name)
    unit = "probability" if score_name == "msp" else "logit units"
    panels = [("fpr95", 100.0, f"FPR95 of {short} (%)\nlower is better"),
              ("auroc", 100.0, f"AUROC of {short} (%)\nhigher is better"),
              ("mean_score", 1.0, f"mean {short} ({unit})")]
    with paper_style():
        fig, axes = new_figure(len(sets), 3, width=width, height=5.0, sharex=True, sharey="row")
        palette = dict(zip(labels, colors(len(labels))))
        epochs = sorted(table["epoch"].unique())
        for j, name in enumerate(sets):
            for i, (metric, scale, _) in enumerate(panels):
                ax = axes[i, j]
                for label in labels:
                    for shown, style in [(name, "-")] + ([("test", ":")] if metric == "mean_score" else []):
                        if (label, shown, metric) not in stats.index:
                            continue
                        s = stats.loc[(label, shown, metric)]
                        ax.plot(s.index, scale * s["mean"], color=palette[label], linestyle=style, marker="o",
                                markersize=3, label=label if style == "-" else None)
                        if seeds > 1:
                            ax.fill_between(s.index, scale * s["min"], scale * s["max"], color=palette[label],
                                            alpha=0.2, linewidth=0)
                if metric == "auroc":
                    ax.axhline(50.0, color="0.5", linestyle="--", linewidth=0.8)
                ax.set_xticks(epochs)
            axes[0, j].set_title(f"OOD: {name}")
            axes[-1, j].set_xlabel("epoch")  # ticks: the epochs whose logits the runs store
        for i, (_, _, ylabel) in enumerate(panels):
            axes[i, 0].set_ylabel(ylabel)
        handles = list(unique_handles(axes.flat).values())
        handles += [Line2D([], [], color="0.3", linestyle=":", label="bottom row: solid on the OOD set, dotted on ID test"),
                    Line2D([], [], color="0.5", linestyle="--", linewidth=0.8, label="AUROC 50%: chance")]
        if seeds > 1:
            handles.append(Patch(color="0.6", alpha=0.4, label=f"range over {seeds} seeds"))
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3), frameon=False)
        add_subtitle(fig, subtitle)
    return fig
