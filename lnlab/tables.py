"""The paper's table layout for :func:`lnlab.evaluate.ood_table`, and its export (CSV, Markdown, LaTeX).

``paper_layout(table)`` turns the numeric table into the layout of the paper's Table 1 / 3: one
block of rows per post-hoc score, one row per OOD set plus their average (sets of the paper's
benchmark marked †), columns FPR95 ↓ / AUROC ↑ / AUPR ↑ with one sub-column per run; cells are
"mean ± std" over seeds (just the mean for one seed) and the better run of each cell group is in
bold. ``export_table`` writes the numeric CSV plus the Markdown and booktabs LaTeX layouts.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from lnlab.atomic import atomic_write
from lnlab.evaluate import PAPER_OOD_SETS
from lnlab.paths import figures_root

LOWER_IS_BETTER = ("fpr95",)
METRIC_HEADERS = {"fpr95": "FPR95 ↓", "auroc": "AUROC ↑", "aupr": "AUPR ↑"}
SCORE_NAMES = {"msp": "MSP", "odin": "ODIN", "energy": "Energy", "max_logit": "MaxLogit", "gradnorm": "GradNorm",
               "logit_norm": "‖f‖"}
PAPER_MARK = "†"
_LATEX_SYMBOLS = {"↓": r"$\downarrow$", "↑": r"$\uparrow$", "†": r"$^\dagger$", "τ": r"$\tau$", "‖": r"$\|$"}
_BOLD = {"plain": "{}", "markdown": "**{}**", "latex": r"\textbf{{{}}}"}


def cell(mean: float, std: float, decimals: int = 1, pm: str = "±") -> str:
    """``"12.3 ± 0.4"`` (``"12.3"`` when std is NaN, i.e. one seed)."""
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{decimals}f}"
    return f"{mean:.{decimals}f} {pm} {std:.{decimals}f}"


def best_runs(table: pd.DataFrame, decimals: int = 1) -> pd.DataFrame:
    """For each (OOD row, score, metric): the run with the better mean as printed (``decimals``; ties: None)."""
    means = table.xs("mean", axis=1, level="stat").round(decimals)
    out = {}
    for score in means.columns.unique("score"):
        for metric in means.columns.unique("metric"):
            block = means.xs((score, metric), axis=1, level=("score", "metric"))
            best = block.min(axis=1) if metric in LOWER_IS_BETTER else block.max(axis=1)
            out[(score, metric)] = [next(iter(row.index[row == b]), None) if (row == b).sum() == 1 else None
                                    for (_, row), b in zip(block.iterrows(), best)]
    return pd.DataFrame(out, index=means.index)


def paper_layout(table: pd.DataFrame, decimals: int = 1, style: str = "plain",
                 mark: tuple[str, ...] = PAPER_OOD_SETS) -> pd.DataFrame:
    """Strings in the paper's layout: rows (score, OOD set), columns (metric, run); better run in bold.

    ``style``: "plain", "markdown" (``**x**``) or "latex" (``\\textbf{x}``, ``$\\pm$``).
    """
    if style not in _BOLD:
        raise ValueError(f"style must be one of {list(_BOLD)}, got {style!r}")
    best = best_runs(table, decimals)
    pm = r"$\pm$" if style == "latex" else "±"
    runs = list(table.columns.unique("run"))
    rows, index = [], []
    for score in table.columns.unique("score"):
        for ood in table.index:
            row = {}
            for metric in table.columns.unique("metric"):
                for run in runs:
                    mean, std = table.loc[ood, (run, score, metric, "mean")], table.loc[ood, (run, score, metric, "std")]
                    text = cell(mean, std, decimals, pm)
                    if best.loc[ood, (score, metric)] == run and len(runs) > 1:
                        text = _BOLD[style].format(text)
                    row[(METRIC_HEADERS.get(metric, metric), run)] = text
            rows.append(row)
            index.append((SCORE_NAMES.get(score, score), f"{ood} {PAPER_MARK}" if ood in mark else str(ood)))
    frame = pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["score", "OOD set"]))
    frame.columns = pd.MultiIndex.from_tuples(frame.columns, names=["metric", "run"])
    return frame


def export_table(table: pd.DataFrame, name: str, folder: str | os.PathLike | None = None,
                 decimals: int = 1, caption: str | None = None) -> list[Path]:
    """Write ``<name>.csv`` (numbers), ``<name>.md`` and ``<name>.tex`` (paper layout, booktabs) atomically."""
    target = figures_root(folder)
    markdown = paper_layout(table, decimals, "markdown")
    markdown.columns = [f"{metric} {run}" for metric, run in markdown.columns]
    styler = paper_layout(table, decimals, "latex").style.format_index(escape="latex", axis=0)
    latex = styler.format_index(escape="latex", axis=1).to_latex(
        hrules=True, multicol_align="c", caption=caption, clines="skip-last;data")
    for symbol, command in _LATEX_SYMBOLS.items():
        latex = latex.replace(symbol, command)
    texts = {"csv": table.to_csv(), "md": markdown.reset_index().to_markdown(index=False) + "\n",
             "tex": latex}
    return [atomic_write(target / f"{name}.{ext}", lambda handle, text=text: handle.write(text.encode("utf-8")))
            for ext, text in texts.items()]
