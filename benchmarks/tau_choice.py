"""τ chosen on validation data (notebook 04's rule, ``lnlab.tau``), how stable that pick is over seeds, next to the
τ the test OOD sets would pick.

Validation: MSP on ``val`` (held-out training images) against the validation OOD sets
(``lnlab.tau.validation_oods``: ``gaussian_val`` and the three sets built from held-out images), AUROC
averaged over them; the rule never reads a test set. ``pick_stability``: the rule on each seed alone and on
bootstrap resamples of each τ's seeds. The test columns (AUROC / FPR95 of MSP and Energy per OOD set, ECE raw and
after temperature scaling, %) are printed only to compare. Runs come from the cache or the reference source
(``--profile reference``: each τ with every seed shipped); missing ones are trained for a trainable profile.

    python benchmarks/tau_choice.py --profile reference
    python benchmarks/tau_choice.py --profile reference --dataset tinyimagenet100
    python benchmarks/tau_choice.py --profile laptop --seeds 0 --runs ~/lnlab-runs
    python benchmarks/tau_choice.py --profile reference --taus 0.0025 --only-seed 3   # one run's numbers, CE or not
"""

from __future__ import annotations

import argparse

import pandas as pd

from lnlab.comparisons import comparison_runs
from lnlab.evaluate import ood_table
from lnlab.profiles import sweep_taus
from lnlab.tables import cell
from lnlab.tau import choice_by_test_sets, pick_stability, stability_table, tau_table, validation_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="reference")
    parser.add_argument("--dataset", default=None, help="training set (default: the profile's, CIFAR-10)")
    parser.add_argument("--taus", nargs="+", type=float, default=None, help="default: every τ shipped / the grid")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="default: every seed shipped for each τ")
    parser.add_argument("--runs", default=None, help="run cache (default $LNLAB_RUNS or runs/)")
    parser.add_argument("--only-seed", type=int, default=None,
                        help="the tables of this seed's runs alone (those that have it, CE included if it does); "
                             "no pick")
    args = parser.parse_args()
    if args.only_seed is not None and args.seeds is not None:
        parser.error("--only-seed reads every shipped seed and keeps one: pass it without --seeds")
    runs = comparison_runs(args.profile, taus=sweep_taus(args.profile, args.taus, args.dataset), runs_root=args.runs,
                           seeds=args.seeds, validation=True, dataset=args.dataset,
                           each_seeds=args.profile == "reference" and args.seeds is None)
    if args.only_seed is not None:
        runs = {label: kept for label, group in runs.items()
                if (kept := [run for run in group if run.config.seed == args.only_seed])}
        if not runs:
            parser.error(f"no run of seed {args.only_seed} among these: pass a seed they have")
    oods = list(next(iter(runs.values()))[0].config.ood)
    table = tau_table(runs, oods)
    columns = ["tau", "seeds", "accuracy", "ece", "ece_eval", "ece_scaled", "val_auroc", "val_fpr95",
               "mean_auroc", "mean_fpr95", *(f"{ood}_auroc" for ood in oods)]
    print(pd.DataFrame({c: [cell(m, s, 1) for m, s in zip(table[c], table.get(f"{c}_std", table[c] * float("nan")))]
                        if c not in ("tau", "seeds") else table[c] for c in columns}, index=table.index).to_markdown())
    energy = ood_table(runs, scores=["msp", "energy"], oods=oods)
    rows = []
    for label in runs:
        for score in ("msp", "energy"):
            rows.append({"run": label, "score": score, **{
                f"{ood} {metric}": cell(energy.loc[ood, (label, score, metric, "mean")],
                                        energy.loc[ood, (label, score, metric, "std")])
                for ood in [*oods, "mean"] for metric in ("fpr95", "auroc")}})
    print("\nFPR95 / AUROC per OOD set, MSP and Energy (%, mean ± std over seeds):")
    print(pd.DataFrame(rows).to_markdown(index=False))
    per_set = validation_metrics(runs, per_set=True)
    auroc = per_set.xs(("msp", "auroc", "mean"), level=("score", "metric", "stat"), axis=1)
    print("\nValidation MSP AUROC per validation set (held-out images against each; %, mean over seeds; the rule "
          "reads the mean row):")
    print(auroc.round(1).T.to_markdown())
    if args.only_seed is not None:
        return  # one seed: nothing to say about a pick's stability
    try:
        stability = pick_stability(runs)
    except ValueError as error:  # only CE shipped so far for this training set
        print(f"\nno τ pick yet: {error}")
        return
    print("\n" + stability_table(stability).to_markdown())
    print(f"\n{stability.summary()}")
    print(f"τ the test OOD sets would pick (mean AUROC over {oods}): {choice_by_test_sets(runs, oods):g}")


if __name__ == "__main__":
    main()
