"""Train the runs of a reference recipe into the run cache, one after another, in a fixed order.

The order is the protocol of benchmarks/RESULTS.md ("laptop reference recipe"): first the seed-0
pair that the recipe is validated on (held-out images against the validation OOD sets, never the
test OOD sets), then the other seeds of that pair, then the other τ values. A killed run resumes
from its last finished epoch when the script is started again; finished runs are skipped.
Export the finished runs into the reference source with ``lnlab export … --to lnlab/reference/<recipe>``.

    nice -n 10 python benchmarks/train_reference.py --profile laptop --runs /root/lnlab-runs
"""

from __future__ import annotations

import argparse
import time

from lnlab.profiles import make_config
from lnlab.runs import get_run

# (loss, tau, seed) in training order
ORDER = [("ce", None, 0), ("logitnorm", 0.04, 0), ("ce", None, 1), ("logitnorm", 0.04, 1),
         ("ce", None, 2), ("logitnorm", 0.04, 2), ("logitnorm", 0.01, 0), ("logitnorm", 0.02, 0),
         ("logitnorm", 0.1, 0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="laptop")
    parser.add_argument("--runs", default=None, help="run cache root (default: $LNLAB_RUNS, else runs/)")
    parser.add_argument("--first", type=int, default=len(ORDER), help="train only the first N runs of the order")
    parser.add_argument("--epochs", type=int, default=None, help="override the profile's epochs (a candidate recipe)")
    args = parser.parse_args()
    for loss, tau, seed in ORDER[:args.first]:
        extra = {} if args.epochs is None else {"epochs": args.epochs}
        config = make_config(args.profile, loss=loss, seed=seed, **extra, **({} if tau is None else {"tau": tau}))
        start = time.time()
        run = get_run(config, root=args.runs, progress=True)
        print(f"{config.label()} seed {seed}: {run.key} test acc {run.test_acc:.4f}, "
              f"{'cached' if run.from_cache else f'trained in {time.time() - start:.0f} s'}", flush=True)


if __name__ == "__main__":
    main()
