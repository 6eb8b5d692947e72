"""Search small CPU-sized settings for the one where LogitNorm's effect on MSP shows best.

Each candidate is a CE + LogitNorm pair of ``make_config("quick", **overrides)``; the script trains
(or loads from the run cache) every pair and prints test accuracy and MSP FPR95 / AUROC per OOD
set, plus the mean over OOD sets, and the images seen per run (a proxy of CPU time).  This is how
the ``quick`` profile was chosen (see the issue notes): run it on a GPU with ``--fp32`` so the
numbers match what the CPU profile computes, or on a CPU with ``--only NAME``.

    python benchmarks/quick_search.py --device cuda --fp32 --json results.json
"""

from __future__ import annotations

import argparse
import json
import time

from lnlab.metrics import ood_metrics
from lnlab.profiles import make_config
from lnlab.runs import get_run
from lnlab.scores import msp

# name -> overrides of the quick profile (CE and LogitNorm share everything but the loss)
CANDIDATES: dict[str, dict] = {
    "w32-1000x30": dict(model_width=32, subset_per_class=1000, epochs=30),
    "w32-2000x20": dict(model_width=32, subset_per_class=2000, epochs=20),
    "w32-5000x10": dict(model_width=32, subset_per_class=5000, epochs=10),
    "w32-500x60": dict(model_width=32, subset_per_class=500, epochs=60),
    "w64-1000x30": dict(model_width=64, subset_per_class=1000, epochs=30),
    "w32-1000x30-wu3": dict(model_width=32, subset_per_class=1000, epochs=30, warmup_epochs=3),
    "w32-1000x30-tau0.1": dict(model_width=32, subset_per_class=1000, epochs=30, tau=0.1),
    "w32-2000x20-tau0.1": dict(model_width=32, subset_per_class=2000, epochs=20, tau=0.1),
}


def evaluate(run) -> dict:
    """Accuracy and MSP metrics of a run on every tracked OOD set (from cached logits)."""
    id_scores = msp(run.logits["test"])
    row = {"test_acc": run.test_acc, "final_train_loss": run.final_train_loss}
    per_set = {name: ood_metrics(id_scores, msp(logits)) for name, logits in run.logits.items() if name != "test"}
    row["ood"] = per_set
    row["mean_fpr95"] = sum(m["fpr95"] for m in per_set.values()) / len(per_set)
    row["mean_auroc"] = sum(m["auroc"] for m in per_set.values()) / len(per_set)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fp32", action="store_true", help="no bf16 autocast on CUDA (matches CPU numerics)")
    parser.add_argument("--tau", type=float, default=0.04)
    parser.add_argument("--only", nargs="*", help="candidate names to run (default: all)")
    parser.add_argument("--root", default=None, help="run-cache root (default: LNLAB_RUNS or runs/)")
    parser.add_argument("--json", default=None, help="write all results to this JSON file")
    args = parser.parse_args()

    results = {}
    for name, overrides in CANDIDATES.items():
        if args.only and name not in args.only:
            continue
        overrides = {"tau": args.tau, **overrides, "device": args.device}
        if args.fp32:
            overrides["amp"] = False
        rows = {}
        for loss in ("ce", "logitnorm"):
            started = time.perf_counter()
            config = make_config("quick", loss=loss, **overrides)
            run = get_run(config, root=args.root, progress=False)
            rows[loss] = evaluate(run) | {"seconds": time.perf_counter() - started, "from_cache": run.from_cache}
        images = overrides["subset_per_class"] * 10 * overrides["epochs"]
        results[name] = {"overrides": overrides, "train_images": images, **rows}
        ce, ln = rows["ce"], rows["logitnorm"]
        print(f"{name:22s} images/run={images:>8,d}  acc CE {ce['test_acc']:.3f} LN {ln['test_acc']:.3f}  "
              f"mean MSP FPR95 CE {ce['mean_fpr95']:.3f} LN {ln['mean_fpr95']:.3f}  "
              f"AUROC CE {ce['mean_auroc']:.3f} LN {ln['mean_auroc']:.3f}  "
              f"({ce['seconds']:.0f}+{ln['seconds']:.0f} s)", flush=True)
        for ood in ce["ood"]:
            c, l = ce["ood"][ood], ln["ood"][ood]
            print(f"    {ood:14s} FPR95 {c['fpr95']:.3f} -> {l['fpr95']:.3f}   AUROC {c['auroc']:.3f} -> {l['auroc']:.3f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
