#!/usr/bin/env bash
# One GPU session, prepared to run once (about 7 minutes on an H200):
#   1. data_speed.py on the GPU (Loader vs DataLoader + PIL transforms),
#   2. in parallel: the paper recipe (WRN-40-2, bf16) compressed to $PAPER_EPOCHS epochs for CE and
#      LogitNorm (tau 0.04), and the quick-profile search (fastnet, fp32 so it matches the CPU),
#   3. lnlab eval tables of the paper pair; histories + logits packed into $OUT.
# Needs the offline packs in $LNLAB_DATA (default .devicepack/data, an ignored folder to carry).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD MPLBACKEND=Agg OMP_NUM_THREADS=2
export LNLAB_DATA=${LNLAB_DATA:-$PWD/.devicepack/data} LNLAB_CACHE=/tmp/lnlab-cache LNLAB_RUNS=/tmp/lnlab-runs
OUT=${OUT:-/tmp/lnlab-gpu-out}
PAPER_EPOCHS=${PAPER_EPOCHS:-15}
BUDGET=${BUDGET:-330}   # seconds for step 2
mkdir -p "$OUT"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, sys; print('torch', torch.__version__, 'python', sys.version.split()[0])" | tee -a "$OUT/gpu.txt"
python3 -c "from lnlab.data import load_dataset as l; [l(n, s) for n, s in (('cifar10', 'train'), ('cifar10', 'test'))]"

echo "== 1. data speed (GPU) =="
timeout 120 python3 benchmarks/data_speed.py --device cuda --workers 8 2>&1 | tee "$OUT/data_speed.txt"

echo "== 2. paper pair ($PAPER_EPOCHS epochs) + quick search, in parallel, $BUDGET s =="
for loss in ce logitnorm; do
  timeout "$BUDGET" python3 -m lnlab train --profile paper --loss "$loss" --tau 0.04 --epochs "$PAPER_EPOCHS" --no-progress \
    > "$OUT/paper_$loss.log" 2>&1 &
done
timeout "$BUDGET" python3 benchmarks/quick_search.py --device cuda --fp32 --workers 8 --root /tmp/lnlab-quick \
  --json "$OUT/quick_search.json" 2>&1 | tee "$OUT/quick_search.txt"
wait

echo "== 3. paper pair tables =="
for loss in ce logitnorm; do
  timeout 60 python3 -m lnlab eval --profile paper --loss "$loss" --tau 0.04 --epochs "$PAPER_EPOCHS" --no-progress \
    --scores msp energy max_logit 2>&1 | tee -a "$OUT/paper_eval.txt"
done
tail -n 3 "$OUT"/paper_*.log
(cd /tmp/lnlab-runs && tar czf "$OUT/paper_runs.tgz" --exclude=model.pt --exclude=checkpoint.pt . ) && ls -la "$OUT"
