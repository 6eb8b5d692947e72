"""Wall time of a 4-config ``ci`` sweep: one after another vs Ray tasks, each into a fresh run cache.

The configs are ``lnlab sweep --profile ci --taus 0.01 0.04 0.1`` (CE + three LogitNorm runs). The
sequential sweep trains in this process with PyTorch's default threads; the Ray sweep starts a local
Ray instance (its start-up is included) and runs ``--parallel`` tasks at once with
``cores // parallel`` threads each. Decoded datasets are cached beforehand so neither pays for it.
Also prints the size of one exported run (``lnlab export``), the unit of sharing runs.

    python benchmarks/sweep_wall_time.py --parallel 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from lnlab.profiles import make_config
from lnlab.splits import load_train_data
from lnlab.sweep import run_sweep

TAUS = (0.01, 0.04, 0.1)


def configs() -> list:
    return [make_config("ci", loss="ce")] + [make_config("ci", loss="logitnorm", tau=t) for t in TAUS]


def timed_sweep(parallel: int) -> tuple[float, Path]:
    root = Path(tempfile.mkdtemp(prefix=f"lnlab-sweep-p{parallel}-"))
    start = time.perf_counter()
    result = run_sweep(configs(), root=root, parallel=parallel, progress=False)
    assert not result.failures and len(result.trained) == len(configs()), result.failures
    return time.perf_counter() - start, root


def exported_size_kib(root: Path) -> float:
    from lnlab.portable import export_run
    from lnlab.runs import load_run

    config = configs()[1]
    folder = export_run(load_run(root / config.key(), config), Path(tempfile.mkdtemp(prefix="lnlab-export-")))
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    load_train_data(configs()[0])  # decode the packs once, outside the timings
    print(f"{len(configs())} ci configs, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    sequential, root = timed_sweep(1)
    ray_time, _ = timed_sweep(args.parallel)
    print("\n| sweep | wall time (s) |\n|---|---|")
    print(f"| one after another (in process) | {sequential:.0f} |")
    print(f"| Ray, --parallel {args.parallel} (incl. Ray start) | {ray_time:.0f} |")
    print(f"\nload average at end {os.getloadavg()[0]:.1f}")
    print(f"exported run (LogitNorm τ=0.04, ci): {exported_size_kib(root):.0f} KiB; "
          f"its cache entry with weights: {sum(p.stat().st_size for p in (root / configs()[1].key()).rglob('*') if p.is_file()) / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
