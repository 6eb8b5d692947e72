"""A profile's CE vs LogitNorm numbers over seeds, as `benchmarks/RESULTS.md` reports them.

Prints, in Markdown: ID test accuracy (mean ± std over seeds), the OOD table of MSP and Energy
(``lnlab.evaluate.ood_table`` in notebook 05's layout, % mean ± sample std, † = the paper's sets) and
the calibration of the first seed (notebook 06's protocol). Runs come from the run cache; missing ones
are trained (``lnlab sweep --parallel`` trains them several at once).

    python benchmarks/seed_table.py --profile quick --seeds 0 1 2 --tau 0.04
"""

from __future__ import annotations

import argparse

from lnlab import calibration
from lnlab.evaluate import accuracy_table, ood_table
from lnlab.suite import comparison_runs, main_pair
from lnlab.tables import paper_layout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--tau", type=float, default=0.04)
    parser.add_argument("--runs", default=None, help="run cache (default $LNLAB_RUNS or runs/)")
    args = parser.parse_args()
    runs = comparison_runs(args.profile, taus=[args.tau], runs_root=args.runs, seeds=args.seeds)
    first = next(iter(runs.values()))[0].config
    print(f"profile {args.profile}: {first.model}, {first.epochs} epochs, warm-up {first.warmup_epochs:g}, "
          f"lr {first.lr:g}, weight decay {first.weight_decay:g}; seeds {args.seeds}\n")
    print("ID test accuracy (%):\n")
    print(accuracy_table(runs).round(2).to_markdown())
    print()
    table = paper_layout(ood_table(runs, scores=["msp", "energy"]), style="markdown")
    table.columns = [f"{metric} {run}" for metric, run in table.columns]
    print(table.reset_index().to_markdown(index=False))
    first_seed = {label: group[0] for label, group in main_pair(runs).items()}
    print(f"\nCalibration of seed {args.seeds[0]} (T fitted on one half of the test subset, reported on the other):\n")
    print(calibration.calibration_table(calibration.calibrate_runs(first_seed)).round(2).to_markdown())


if __name__ == "__main__":
    main()
