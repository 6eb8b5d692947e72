"""The numbers of benchmarks/RESULTS.md for a reference recipe, validation first.

``--part validation`` reads only held-out training images and the validation OOD sets (the recipe
choice of RESULTS.md, "laptop reference recipe": CE's validation accuracy, MSP AUROC / FPR95 per
validation set and their mean for CE and LogitNorm τ = 0.04, seed 0). ``--part test`` then prints
the test numbers over the seeds there are: accuracy, ECE (raw logits, 15 bins), MSP and Energy
FPR95 / AUROC per OOD set (mean ± sample std), CE's logit norm over the last epochs, wall time and
provenance. Runs come from the run cache or the reference source; nothing is trained.

    python benchmarks/laptop_report.py --part validation --runs ~/lnlab-runs
    python benchmarks/laptop_report.py --part test --runs ~/lnlab-runs --seeds 0 1 2
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch

from lnlab.evaluate import accuracy_table, ood_table
from lnlab.metrics import ece
from lnlab.profiles import make_config
from lnlab.runs import CacheError, Seeds, get_run
from lnlab.tables import paper_layout
from lnlab.splits import VALIDATION_ID
from lnlab.tau import validation_metrics


def load(profile: str, taus: list[float], seeds: list[int], root: str | None, **overrides) -> dict[str, Seeds]:
    """CE and LogitNorm at each τ, for the seeds that are finished (never trained)."""
    runs = {}
    for loss in [{"loss": "ce"}, *({"loss": "logitnorm", "tau": t} for t in taus)]:
        found = []
        for seed in seeds:
            try:
                found.append(get_run(make_config(profile, **loss, seed=seed, **overrides), root=root, train=False))
            except CacheError:
                continue
        if found:
            runs[found[0].config.label()] = Seeds(found)
    return runs


def validation(runs: dict[str, Seeds]) -> None:
    accuracy = accuracy_table(runs, id_set=VALIDATION_ID)
    print("Validation accuracy on the held-out images (%):\n")
    print(accuracy.round(2).to_markdown())
    table = validation_metrics(runs, per_set=True)
    print("\nMSP, held-out images vs each validation OOD set (%):\n")
    layout = paper_layout(table, style="markdown")
    layout.columns = [f"{metric} {run}" for metric, run in layout.columns]
    print(layout.reset_index().to_markdown(index=False))


def test(runs: dict[str, Seeds]) -> None:
    print("Test accuracy (%):\n")
    print(accuracy_table(runs).round(2).to_markdown())
    eces = {label: [100 * ece(torch.softmax(r.logits_for("test"), 1), r.labels) for r in group]
            for label, group in runs.items()}
    print("\nECE of the raw logits on the test set (%, 15 bins): "
          + "; ".join(f"{k} {np.mean(v):.2f} ± {np.std(v, ddof=1) if len(v) > 1 else float('nan'):.2f}"
                      for k, v in eces.items()))
    table = paper_layout(ood_table(runs, scores=["msp", "energy"]), style="markdown")
    table.columns = [f"{metric} {run}" for metric, run in table.columns]
    print("\nOOD detection (%, mean ± std over seeds):\n")
    print(table.reset_index().to_markdown(index=False))
    print("\nMean raw logit norm on training images over the last 5 epochs, and wall time per run:\n")
    rows = []
    for label, group in runs.items():
        for run in group:
            norms = [row["norm_train_mean"] for row in run.history[-5:]]
            rows.append({"run": label, "seed": run.config.seed, "norm (last 5 epochs)": " → ".join(f"{n:.2f}" for n in norms),
                         "min/run": sum(r["seconds"] for r in run.history) / 60,
                         "device": run.provenance.get("device_name"), "precision": run.provenance.get("precision")})
    print(pd.DataFrame(rows).round(1).to_markdown(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["validation", "test"], required=True)
    parser.add_argument("--profile", default="laptop")
    parser.add_argument("--taus", nargs="+", type=float, default=[0.04])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--runs", default=None, help="run cache (default $LNLAB_RUNS or runs/)")
    parser.add_argument("--epochs", type=int, default=None, help="override the profile's epochs (a candidate)")
    args = parser.parse_args()
    runs = load(args.profile, args.taus, args.seeds, args.runs, **({} if args.epochs is None else {"epochs": args.epochs}))
    config = next(iter(runs.values()))[0].config
    print(f"recipe {args.profile}: {config.model}, {config.epochs} epochs, {config.device}; seeds "
          f"{sorted({r.config.seed for g in runs.values() for r in g})}\n")
    (validation if args.part == "validation" else test)(runs)


if __name__ == "__main__":
    main()
