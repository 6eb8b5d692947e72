"""The 2-D toy of notebook 00 measured: logit norms, far-point AUROC of MSP, timings (lnlab.toy).

Three Gaussian blobs (1,500 points, radius 2, std 0.5: the data lies within radius ~3), an MLP
2-64-64-3 (ReLU), 3,000 full-batch steps, CE and LogitNorm (τ = 0.04), each without and with
weight decay 5e-4. For each optimizer (the notebook's SGD lr 0.1 momentum 0.9; plain gradient
descent; Adam lr 0.01) it prints the mean raw logit norm on the data (first, peak, last step), the
norm of the last layer, the mean raw logit norm on circles of radius 10 and 20 (their ratio is 2 if
the norm grows linearly with the distance), and the AUROC of MSP for the data (positive) against
points in the rings 4-6 and 12-18. It then times the toy explorer's redraw (300 steps + a 200x200 map).

    OMP_NUM_THREADS=1 python benchmarks/toy_mechanism.py            # about 5 min on one busy core
    python benchmarks/toy_mechanism.py --optimizers sgd --steps 3000
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from lnlab import toy

OPTIMIZERS = {"sgd": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9},
              "gd": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.0},
              "adam": {"optimizer": "adam", "lr": 0.01}}


def measure(name: str, steps: int, x: torch.Tensor, y: torch.Tensor) -> pd.DataFrame:
    runs = toy.train_grid(x, y, tau=0.04, weight_decays=(0.0, 5e-4), steps=steps, **OPTIMIZERS[name])
    summary = toy.summary_table(runs)
    rings = toy.ring_table(runs, x)["auroc_msp"].unstack("ring")
    rows = []
    for label, run in runs.items():
        r10, r20 = toy.norm_vs_radius(run, [10.0, 20.0])
        rows.append({"optimizer": name, "run": label, "train acc %": 100 * summary.loc[label, "train accuracy"],
                     "norm first": summary.loc[label, "norm first"], "norm peak": summary.loc[label, "norm peak"],
                     "norm last": summary.loc[label, "norm last"], "last layer": run.final["head_norm"],
                     "norm r=10": r10, "norm r=20": r20, "AUROC 4-6": rings.loc[label, "4–6"],
                     "AUROC 12-18": rings.loc[label, "12–18"], "seconds": run.seconds})
    return pd.DataFrame(rows)


def time_explorer(repeats: int = 3) -> list[float]:
    from lnlab import toy_widgets

    explorer = toy_widgets.toy_explorer()
    times = []
    for tau in (0.1, 0.02, 0.04)[:repeats]:
        start = time.perf_counter()
        explorer.controls["tau"].value = tau
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--optimizers", nargs="+", default=list(OPTIMIZERS), choices=list(OPTIMIZERS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    x, y = toy.make_blobs()
    print(f"data: {len(y)} points, max radius {float(x.norm(dim=1).max()):.2f}, "
          f"99% within {float(x.norm(dim=1).quantile(0.99)):.2f}; torch threads {torch.get_num_threads()}")
    table = pd.concat([measure(name, args.steps, x, y) for name in args.optimizers], ignore_index=True)
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print(table.round(3).to_markdown(index=False) if _has_tabulate() else table.round(3).to_string(index=False))
    times = time_explorer()
    print("toy explorer redraw (300 steps + 200x200 map + figure):", ", ".join(f"{t:.2f} s" for t in times))


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
