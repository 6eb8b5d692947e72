#!/usr/bin/env bash
# Start the training queue of the reference runs in the background (benchmarks/train_queue.py), from a git
# worktree at the current commit of main so that edits in the checkout never change a run under way.
# Resumable: a killed run continues from its last finished epoch. Stop it between runs: touch $RUNS/queue.stop.
#   bash scripts/queue.sh            # RUNS=/root/lnlab-runs LOG=/root/queue.log by default
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
runs=${RUNS:-/root/lnlab-runs}
log=${LOG:-/root/queue.log}
worktree=${WORKTREE:-$repo/../queue}
[ -d "$worktree" ] || git worktree add --detach "$worktree" HEAD
git -C "$worktree" checkout -q --detach "$(git rev-parse HEAD)"
mkdir -p "$runs"; rm -f "$runs/queue.stop"
# Threads sleep at barriers instead of spinning: on 2 shared cores a spinning OpenMP thread starves the run.
cd "$worktree"
LNLAB_DATA=${LNLAB_DATA:-$(cd "$repo/../shared/data" && pwd)} PYTHONPATH="$worktree" OMP_WAIT_POLICY=PASSIVE \
  nohup nice -n 1 "$repo/.venv/bin/python" benchmarks/train_queue.py --repo "$repo" --runs "$runs" >> "$log" 2>&1 &
echo "queue started (pid $!), log $log"
