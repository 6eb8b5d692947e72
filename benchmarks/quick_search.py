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
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

from lnlab.metrics import ood_metrics
from lnlab.profiles import make_config
from lnlab.runs import get_run
from lnlab.scores import msp

# name -> overrides of the quick profile (CE and LogitNorm share everything but the loss;
# CE ignores tau, so tau variants reuse one CE run through the cache).
BASE = dict(model_width=32, subset_per_class=1000, epochs=30, weight_decay=5e-4)
CANDIDATES: dict[str, dict] = {
    "w32-1000x20": dict(BASE, epochs=20),
    "w32-1000x30": dict(BASE),
    "w32-2000x15": dict(BASE, subset_per_class=2000, epochs=15),
    "w32-5000x7": dict(BASE, subset_per_class=5000, epochs=7),
    "w32-500x60": dict(BASE, subset_per_class=500, epochs=60),
    "w32-1000x30-tau0.1": dict(BASE, tau=0.1),
    "w32-1000x30-tau0.02": dict(BASE, tau=0.02),
    "w32-2000x15-tau0.1": dict(BASE, subset_per_class=2000, epochs=15, tau=0.1),
    "w32-5000x7-tau0.1": dict(BASE, subset_per_class=5000, epochs=7, tau=0.1),
    "w32-1000x30-b128": dict(BASE, batch_size=128),
    "w32-1000x30-wu3": dict(BASE, warmup_epochs=3),
    "w32-1000x30-lr0.05": dict(BASE, lr=0.05),
    "w32-1000x30-wd2e-3": dict(BASE, weight_decay=2e-3),
    "w32-1000x30-step": dict(BASE, schedule="step"),
    "w48-1000x30": dict(BASE, model_width=48),
    "w32d5-1000x30": dict(BASE, model_depth=5),
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


def train_one(overrides: dict, root: str | None) -> float:
    """Train (or load) one run in a worker process; returns the seconds it took."""
    started = time.perf_counter()
    get_run(make_config("quick", **overrides), root=root, progress=False)
    return time.perf_counter() - started


def pair_result(name: str, overrides: dict, root: str | None, seconds: dict) -> dict:
    """Evaluate the cached CE + LogitNorm pair of one candidate."""
    rows = {}
    for loss in ("ce", "logitnorm"):
        config = make_config("quick", loss=loss, **overrides)
        rows[loss] = evaluate(get_run(config, root=root, progress=False)) | {"seconds": seconds.get(config.key(), 0.0)}
    config = make_config("quick", **overrides)
    return {"name": name, "overrides": overrides, "train_images": config.subset_per_class * 10 * config.epochs, **rows}


def report(result: dict) -> None:
    ce, ln = result["ce"], result["logitnorm"]
    print(f"{result['name']:22s} images/run={result['train_images']:>8,d}  acc CE {ce['test_acc']:.3f} LN {ln['test_acc']:.3f}  "
          f"mean MSP FPR95 CE {ce['mean_fpr95']:.3f} LN {ln['mean_fpr95']:.3f}  "
          f"AUROC CE {ce['mean_auroc']:.3f} LN {ln['mean_auroc']:.3f}  "
          f"({ce['seconds']:.0f}+{ln['seconds']:.0f} s)", flush=True)
    for ood in ce["ood"]:
        c, l = ce["ood"][ood], ln["ood"][ood]
        print(f"    {ood:14s} FPR95 {c['fpr95']:.3f} -> {l['fpr95']:.3f}   AUROC {c['auroc']:.3f} -> {l['auroc']:.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fp32", action="store_true", help="no bf16 autocast on CUDA (matches CPU numerics)")
    parser.add_argument("--tau", type=float, default=0.04)
    parser.add_argument("--only", nargs="*", help="candidate names to run (default: all)")
    parser.add_argument("--workers", type=int, default=1, help="candidates trained in parallel processes")
    parser.add_argument("--root", default=None, help="run-cache root (default: LNLAB_RUNS or runs/)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override for every candidate, e.g. --set epochs=1 subset_per_class=20 (smoke test)")
    parser.add_argument("--json", default=None, help="write all results to this JSON file (rewritten as results come)")
    args = parser.parse_args()

    jobs = {}
    for name, overrides in CANDIDATES.items():
        if args.only and name not in args.only:
            continue
        jobs[name] = {"tau": args.tau, **overrides, "device": args.device} | ({"amp": False} if args.fp32 else {})
        jobs[name] |= {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.set)}
    results: dict[str, dict] = {}
    # unique runs (CE ignores tau, so several candidates share one CE run), trained in parallel
    runs = {}
    for overrides in jobs.values():
        for loss in ("ce", "logitnorm"):
            runs.setdefault(make_config("quick", loss=loss, **overrides).key(), overrides | {"loss": loss})
    seconds: dict[str, float] = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=context) as pool:
        futures = {pool.submit(train_one, overrides, args.root): key for key, overrides in runs.items()}
        for future in as_completed(futures):
            try:
                seconds[futures[future]] = future.result()
            except Exception as error:  # one failing run must not lose the others
                print(f"run {runs[futures[future]]}: failed: {error}", flush=True)
            done = [name for name, o in jobs.items()
                    if all(make_config("quick", loss=l, **o).key() in seconds for l in ("ce", "logitnorm"))]
            for name in done:
                if name in results:
                    continue
                results[name] = pair_result(name, jobs[name], args.root, seconds)
                report(results[name])
                if args.json:
                    with open(args.json, "w") as handle:
                        json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
