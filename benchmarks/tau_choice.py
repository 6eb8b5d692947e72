"""τ chosen on validation data (notebook 04's rule, ``lnlab.tau``) next to the τ the test OOD sets would pick.

Validation: MSP on ``val`` (held-out training images) against the validation OOD sets
(``lnlab.tau.validation_oods``: ``gaussian_val`` and the three sets built from held-out images), AUROC
averaged over them; the rule never reads a test set. The test columns (AUROC of MSP per OOD set and
their mean, ECE of the raw logits on the test subset, %) are printed only to compare. Runs come from
the cache or the reference source; missing ones are trained.

    python benchmarks/tau_choice.py --profile quick --seeds 0
    python benchmarks/tau_choice.py --profile laptop --seeds 0 --runs ~/lnlab-runs
"""

from __future__ import annotations

import argparse

from lnlab.suite import comparison_runs
from lnlab.profiles import DEFAULT_SWEEP
from lnlab.tau import choice_by_test_sets, pick_tau, tau_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--taus", nargs="+", type=float, default=list(DEFAULT_SWEEP))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--runs", default=None, help="run cache (default $LNLAB_RUNS or runs/)")
    args = parser.parse_args()
    runs = comparison_runs(args.profile, taus=args.taus, runs_root=args.runs, seeds=args.seeds, validation=True)
    oods = list(next(iter(runs.values()))[0].config.ood)
    columns = ["tau", "accuracy", "ece", "val_auroc", "val_fpr95", "mean_auroc", "mean_fpr95",
               *(f"{ood}_auroc" for ood in oods)]
    table = tau_table(runs, oods)[columns]
    print(table.round({c: 1 for c in columns if c != "tau"}).to_markdown())
    print(f"\nτ picked on validation (val vs the validation OOD sets, mean MSP AUROC): {pick_tau(runs):g}")
    print(f"τ the test OOD sets would pick (mean AUROC over {oods}): {choice_by_test_sets(runs, oods):g}")


if __name__ == "__main__":
    main()
