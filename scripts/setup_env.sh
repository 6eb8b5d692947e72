#!/usr/bin/env bash
# Create .venv with PyTorch and lnlab (editable, with the dev and ray extras: JupyterLab, the kernel
# "lnlab", pytest, Playwright, Ray for `lnlab sweep --parallel`). Idempotent.
# LNLAB_TORCH / LNLAB_TORCHVISION override the pinned versions (e.g. a CPU-only or newer build).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${LNLAB_VENV:-.venv}
python=${PYTHON:-python3}
torch_version=${LNLAB_TORCH:-2.14.1}
torchvision_version=${LNLAB_TORCHVISION:-0.29.1}

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "torch==$torch_version" "torchvision==$torchvision_version"
"$venv/bin/python" -m pip install --quiet -e ".[dev,ray]"
# pip installs the kernelspec "lnlab" and JupyterLab's settings overrides (pyproject data-files).
# Older versions of this script overwrote the venv's "python3" kernelspec: give it back to ipykernel.
if grep -qs '(lnlab)' "$venv/share/jupyter/kernels/python3/kernel.json"; then
  "$venv/bin/python" -m ipykernel install --sys-prefix --name python3 >/dev/null
fi
"$venv/bin/python" - <<'CHECK'
from jupyter_client.kernelspec import KernelSpecManager
specs = KernelSpecManager().find_kernel_specs()
assert "lnlab" in specs, f"kernelspec 'lnlab' missing after pip install (found {sorted(specs)})"
CHECK

# Offline packs beside the checkout (../shared/data): link them into data/ (git-ignored) so that
# the default dataset root works without LNLAB_DATA. Existing files in data/ are left alone.
if [ -d ../shared/data ]; then
  for pack in ../shared/data/*.npz; do
    [ -e "data/$(basename "$pack")" ] || ln -s "$(cd "$(dirname "$pack")" && pwd)/$(basename "$pack")" "data/$(basename "$pack")"
  done
fi
echo "lnlab environment ready in $venv"
