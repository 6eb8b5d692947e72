#!/usr/bin/env bash
# `make lab`: JupyterLab on notebooks/ with the kernel "lnlab" and the dataset / run roots that
# `make figures` uses, so runs trained there are loaded here, not retrained. Prints the URL to open.
# LAB_PORT: first port to try (default 8888; the next free one if taken). LAB_IP: default 127.0.0.1.
# LAB_BROWSER=0: do not open a browser. Anything after `--` goes to `jupyter lab`.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${LNLAB_VENV:-.venv}
py="$venv/bin/python"
ip=${LAB_IP:-127.0.0.1}

# The roots every notebook falls back to (runs_root = None, ...), resolved once and exported so the
# kernels see exactly what is printed here ($LNLAB_DATA comes from the Makefile).
eval "$("$py" - <<'PY'
import shlex
from lnlab import paths
for name, root in (("LNLAB_DATA", paths.data_root()), ("LNLAB_RUNS", paths.runs_root()),
                   ("LNLAB_FIGURES", paths.figures_root())):
    print(f"export {name}={shlex.quote(str(root))}")
PY
)"
port=$("$py" - "${LAB_PORT:-8888}" "$ip" <<'PY'
import socket, sys
start, ip = int(sys.argv[1]), sys.argv[2]
for port in range(start, start + 50):
    with socket.socket() as s:
        try:
            s.bind((ip, port))
        except OSError:
            continue
    print(port)
    break
else:
    sys.exit(f"no free port in {start}..{start + 49}: pass LAB_PORT=...")
PY
)
token=$("$py" -c 'import secrets; print(secrets.token_hex(24))')
first=$(cd notebooks && ls [0-9][0-9]_*.ipynb | head -n 1)
options=()
[ "${LAB_BROWSER:-1}" = 0 ] && options+=(--no-browser)
[ "$(id -u)" = 0 ] && options+=(--allow-root)  # containers

cat <<MSG
lnlab: JupyterLab on notebooks/, kernel "Python 3 (lnlab)"
  datasets  $LNLAB_DATA
  runs      $LNLAB_RUNS   (shared with make figures: cached runs load in seconds)
  figures   $LNLAB_FIGURES
  Start with $first: Run > Run All Cells. Stop the server with Ctrl-C (twice).

  Open:  http://$( [ "$ip" = 127.0.0.1 ] && echo localhost || echo "$ip" ):$port/lab/tree/$first?token=$token

MSG
exec "$venv/bin/jupyter" lab --notebook-dir=notebooks --ServerApp.ip="$ip" --ServerApp.port="$port" \
  --ServerApp.port_retries=0 --IdentityProvider.token="$token" --MultiKernelManager.default_kernel_name=lnlab \
  "${options[@]}" "$@"
