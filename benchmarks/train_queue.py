"""The training queue of the reference runs: one run at a time, resumable, each exported and committed.

The queue is a plain text file (default ``benchmarks/queue.txt``), one run per line, in training order:

    <recipe folder> <profile> field=value ...      e.g.   laptop laptop loss=logitnorm tau=0.005 seed=0

The fields are ``TrainConfig`` overrides of the profile (``lnlab.profiles.make_config``), and ``export.<name>=value``
are options of ``lnlab.portable.export_run`` (``export.snapshots=false``: no logits along training). For each line whose
run is not yet in ``<repo>/lnlab/reference/<recipe folder>/``, a fresh Python process trains it into the run
cache (``--runs``; a killed run resumes from its last finished epoch), exports it with its float16 weights
into that folder, and the folder is committed in ``<repo>``. The file is read again before every run, so
lines can be appended, reordered or commented out (``#``) while the queue runs; the protocol that fixed
the order is in ``benchmarks/RESULTS.md``.

Stop it cleanly between two runs with ``touch <runs>/queue.stop`` (or kill it: at most the current epoch
is lost). Run it niced, from a checkout whose code does not change under it (a git worktree), e.g.

    git worktree add ../queue main
    cd ../queue && nice -n 10 ../main/.venv/bin/python benchmarks/train_queue.py --repo ../main --runs /root/lnlab-runs
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()


def parse_line(line: str) -> tuple[str, str, dict] | None:
    """``(recipe folder, profile, overrides)`` of one queue line (``export.*`` entries included), or None for
    a blank or comment line."""
    from lnlab.cli import _parse_value

    text = line.split("#", 1)[0].strip()
    if not text:
        return None
    folder, profile, *pairs = text.split()
    overrides = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if not value:
            raise ValueError(f"queue line {line.strip()!r}: {pair!r} is not field=value")
        overrides[name] = _parse_value(value)  # the CLI's --set parsing: numbers, true/false, a,b lists
    return folder, profile, overrides


def train_one(folder: str, profile: str, overrides: dict, repo: Path, runs: str) -> dict:
    """Train (or resume) one run and export it; returns what happened (run in a child process)."""
    from lnlab.portable import export_run, is_portable
    from lnlab.profiles import make_config
    from lnlab.runs import get_run

    export = {name[len("export."):]: value for name, value in overrides.items() if name.startswith("export.")}
    config = make_config(profile, **{k: v for k, v in overrides.items() if not k.startswith("export.")})
    target = repo / "lnlab" / "reference" / folder
    if is_portable(target / config.key()):
        return {"key": config.key(), "status": "exported"}
    start = time.time()

    def log(epoch: int, row: dict) -> None:
        print(f"  {config.label()} seed {config.seed} epoch {epoch}/{config.epochs}: loss {row['train_loss']:.4f} "
              f"test acc {row['test_acc']:.4f} norm {row['norm_train_mean']:.2f} ({row['seconds']:.0f} s)", flush=True)

    run = get_run(config, root=runs, progress=False, callbacks=[log], reference=False)
    export_run(run, target, **{"weights": True, **export})
    return {"key": config.key(), "status": "trained", "label": config.label(), "seed": config.seed,
            "test_acc": run.test_acc, "seconds": round(time.time() - start)}


def commit(repo: Path, folder: str, result: dict) -> None:
    """Commit the exported run folder only (other changes in ``repo`` are left as they are)."""
    path = f"lnlab/reference/{folder}/{result['key']}"
    message = f"reference source: {folder} recipe, {result['label']} seed {result['seed']}"
    for attempt in range(20):  # another git command may hold the index lock for a moment
        added = subprocess.run(["git", "add", path], cwd=repo, capture_output=True, text=True)
        done = added.returncode == 0 and subprocess.run(
            ["git", "commit", "--quiet", "-m", message, "--only", path], cwd=repo, capture_output=True, text=True
        ).returncode == 0
        if done:
            print(f"committed {path}", flush=True)
            return
        time.sleep(3)
    print(f"could not commit {path}; commit it by hand", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", default=None, help="queue file (default: <repo>/benchmarks/queue.txt)")
    parser.add_argument("--repo", default=str(HERE.parents[1]), help="checkout that receives the exports and commits")
    parser.add_argument("--runs", default=None, help="run cache root (default: $LNLAB_RUNS, else runs/)")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # the child: one queue line
    args = parser.parse_args()
    repo = Path(args.repo).resolve()
    if args.one is not None:
        print("RESULT " + json.dumps(train_one(*parse_line(args.one), repo, args.runs)), flush=True)
        return
    queue = Path(args.queue or repo / "benchmarks" / "queue.txt")
    stop = Path(args.runs or "runs") / "queue.stop"
    done: set[str] = set()
    failed: dict[str, str] = {}  # line -> queue text when it failed: retried once the file changes
    while True:
        text = queue.read_text()
        lines = [line.strip() for line in text.splitlines() if parse_line(line)]
        pending = [line for line in lines if line not in done and failed.get(line) != text]
        if not pending:
            if not failed:
                print("queue empty", flush=True)
                return
            time.sleep(60)  # only failed lines left: wait for the queue file to change
            continue
        if stop.exists():
            print(f"stopped ({stop} exists); {len(pending)} queue lines left", flush=True)
            return
        line = pending[0]
        print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)
        child = subprocess.Popen([sys.executable, str(HERE), "--repo", str(repo), "--one", line,
                                  *(["--runs", args.runs] if args.runs else [])], stdout=subprocess.PIPE, text=True)
        results = []
        for out in child.stdout:
            if out.startswith("RESULT "):
                results.append(json.loads(out[7:]))
            else:
                print(out, end="", flush=True)
        if child.wait() != 0 or not results:
            print(f"{line}: failed (exit {child.returncode}); retried when {queue} changes", flush=True)
            failed[line] = text
            continue
        done.add(line)
        failed.pop(line, None)
        if results[0]["status"] == "trained":
            print(f"{time.strftime('%H:%M:%S')} {results[0]}", flush=True)
            commit(repo, parse_line(line)[0], results[0])

if __name__ == "__main__":
    main()
