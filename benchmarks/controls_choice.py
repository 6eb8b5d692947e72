"""λ and α chosen on validation data, and the table of all five losses (issue #25, notebook 09's numbers).

Prints, in Markdown: each control's candidates at seed 0 (validation MSP AUROC / FPR95 against the four validation
sets, held-out accuracy; ``lnlab.comparisons.control_runs``: the rule of ``lnlab.tau.pick`` among the candidates
whose held-out accuracy is at least CE's minus one point), the value chosen and how; then, over every seed shipped,
ID test accuracy, the OOD table of MSP and Energy (FPR95 / AUROC / AUPR, % mean ± std) and ECE before / after
temperature scaling on the eval half.

    python benchmarks/controls_choice.py                  # the shipped laptop runs
    python benchmarks/controls_choice.py --penalty 1e-3   # a given λ instead of the validated one
"""

from __future__ import annotations

import argparse

import pandas as pd

from lnlab import calibration, evaluate, tables
from lnlab.comparisons import control_runs
from lnlab.plots import recipe_line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="reference")
    parser.add_argument("--tau", type=float, default=0.04)
    parser.add_argument("--penalty", type=float, default=None, help="λ (default: chosen on validation)")
    parser.add_argument("--smoothing", type=float, default=None, help="α (default: chosen on validation)")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="default: every seed shipped")
    parser.add_argument("--runs", default=None, help="run cache (default $LNLAB_RUNS or runs/)")
    args = parser.parse_args()
    runs, choices = control_runs(args.profile, tau=args.tau, penalty=args.penalty, smoothing=args.smoothing,
                                 seeds=args.seeds, runs_root=args.runs, progress=False)
    print(recipe_line(runs))
    for loss, choice in choices.items():
        print(f"\n{loss}: {choice['value']:g} ({choice['how']})")
        if choice["candidates"] is not None:
            print(choice["candidates"].round({"auroc": 2, "fpr95": 2, "val_accuracy": 2}).to_markdown(index=False))
    print("\nID test accuracy (%):\n")
    print(evaluate.accuracy_table(runs).round(2).to_markdown())
    table = tables.paper_layout(evaluate.ood_table(runs, scores=["msp", "energy"], oods=evaluate.ood_rows(runs)),
                                style="markdown")
    table.columns = [f"{metric} {run}" for metric, run in table.columns]
    print("\nOOD detection (%, mean ± std over seeds):\n")
    print(table.reset_index().to_markdown(index=False))
    summary = calibration.calibration_summary(calibration.calibration_table(calibration.calibrate_seeds(runs)))
    print("\nCalibration (T fitted on one half of the test set, ECE on the other, %):\n")
    columns = ["accuracy %", "T", "ECE % before", "ECE % after TS"]
    flat = {c: [tables.cell(m, s, 2 if c == "T" else 1) for m, s in zip(summary[(c, "mean")], summary[(c, "std")])]
            for c in columns}
    print(pd.DataFrame({**flat, "seeds": summary[("seeds", "")]}, index=summary.index).to_markdown())


if __name__ == "__main__":
    main()
