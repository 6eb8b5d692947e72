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


def describe_pair(table: pd.DataFrame, score: str = "msp", metrics: tuple[str, ...] = ("fpr95", "auroc"),
                  decimals: int = 1, pair: tuple[str, str] | None = None) -> str:
    """One Markdown paragraph of what an :func:`lnlab.evaluate.ood_table` says of its first two runs under one
    score, every number read from the table: per metric, each row as "first → second" (mean ± std over
    seeds, %), then the rows where the second run is better or worse by more than the larger of the two
    stds (the rule of the bold cells in ``benchmarks/RESULTS.md``; compared as printed, to ``decimals``)
    and those within that spread. With one seed (no std) the means are only listed. ``pair``: the two runs
    to compare (default: the table's first two)."""
    runs = list(table.columns.unique("run"))
    if len(runs) < 2 or (pair is not None and not set(pair) <= set(runs)):
        raise ValueError(f"describe_pair compares two runs of the table; it has {runs}, asked for {pair}")
    first, second = pair or runs[:2]
    name = SCORE_NAMES.get(score, score)
    listed, verdicts = [], {"better": [], "worse": [], "within the spread": []}
    spread = False
    for metric in metrics:
        header = METRIC_HEADERS.get(metric, metric)
        values = []
        for ood in table.index:
            a, b = (table.loc[ood, (run, score, metric, "mean")] for run in (first, second))
            sa, sb = (table.loc[ood, (run, score, metric, "std")] for run in (first, second))
            values.append(f"{ood} {cell(a, sa, decimals)} → {cell(b, sb, decimals)}")
            if math.isnan(sa) or math.isnan(sb):
                continue
            spread = True
            a, b, limit = round(a, decimals), round(b, decimals), max(round(sa, decimals), round(sb, decimals))
            gain = round((a - b) if metric in LOWER_IS_BETTER else (b - a), decimals)
            verdict = "within the spread" if abs(gain) <= limit else ("better" if gain > 0 else "worse")
            verdicts[verdict].append((header, str(ood)))
        listed.append(f"{header}: " + ", ".join(values))
    any_std = any(not math.isnan(table.loc[ood, (run, score, metric, "std")])
                  for ood in table.index for run in (first, second) for metric in metrics)
    kind = ("mean ± std over seeds" if spread else
            "mean ± std over seeds; a number without ± is one seed's, so no difference is called beyond the spread"
            if any_std else "one seed each, so no difference is called beyond the spread")
    text = f"**{name}, {first} → {second}** (%, {kind}). "
    text += "; ".join(listed) + "."
    if spread:
        def where(verdict: str) -> str:
            rows = verdicts[verdict]
            by_metric = {header: [ood for h, ood in rows if h == header] for header, _ in rows}
            return " and ".join(f"{h} {', '.join(o)}" for h, o in by_metric.items()) or "none"

        text += (f" Against {first}, {second} is better by more than the larger std of the two on {where('better')}; "
                 f"worse on {where('worse')}; within the spread on {where('within the spread')}.")
        if not verdicts["better"] and not verdicts["worse"]:
            text += f" So: no difference between {first} and {second} beyond the spread over seeds."
    return text


def describe_against(table: pd.DataFrame, reference: str, others: list[str], score: str = "msp",
                     metrics: tuple[str, ...] = ("fpr95", "auroc"), decimals: int = 1) -> str:
    """:func:`describe_pair` of ``reference`` against each of ``others`` (runs of ``table``), one Markdown
    paragraph each (runs the table lacks are skipped)."""
    runs = list(table.columns.unique("run"))
    return "\n\n".join(describe_pair(table, score, metrics, decimals, pair=(reference, other))
                        for other in others if other in runs and reference in runs)


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
