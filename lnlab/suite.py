"""Run the notebook suite with papermill, and keep stored notebooks free of outputs.

``run_suite(profile="quick", output="figures")`` executes every ``notebooks/NN_*.ipynb`` in
order in a kernel running *this* interpreter (so a fresh virtual environment works without
registering a kernel), injects the parameters (profile, device, data/run roots, output folder),
and writes the executed notebooks and all figures into ``output``. All notebooks share one run
cache, so a run trained by notebook 01 is loaded, not retrained, by 02 and 03.
This is what ``lnlab figures`` and ``.ci/run`` call.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lnlab.paths import figures_root, notebooks_root, runs_root as default_runs_root
from lnlab import profiles
from lnlab.comparisons import bound_points, check_seeds, comparison_runs, main_pair  # noqa: F401 (notebooks: suite.*)
from lnlab.profiles import REFERENCE

if TYPE_CHECKING:
    import pandas as pd

NOTEBOOKS_DIR = notebooks_root()
# The kernelspec every notebook names (pip installs it: jupyter/kernels/lnlab); not "python3", which any
# other Python on the machine can shadow. JupyterLab opens the notebooks with it without asking.
KERNEL_NAME = "lnlab"
KERNEL_DISPLAY_NAME = "Python 3 (lnlab)"
# Started first when notebooks run in parallel: the longest on the reference runs (papermill's durations in CI,
# benchmarks/RESULTS.md, "CI, Session 6": 40, 21 and 15 s of 147 s in all). Started in file order, the longest came
# last and one worker waited on it alone. Only the start order changes; a failure is still reported in file order.
LONGEST_FIRST = ("08_your_network", "00_mechanism", "07_tau_and_classes")


class NotebookError(RuntimeError):
    """A notebook of the suite failed; the message names the notebook, the cell and the error."""


# --------------------------------------------------------------------------- which notebooks


def notebook_paths(names: Sequence[str] | None = None, folder: str | os.PathLike | None = None) -> list[Path]:
    """Suite notebooks in run order (``NN_*.ipynb``), or the ones named (stem, file name or path)."""
    folder = Path(folder) if folder is not None else NOTEBOOKS_DIR
    available = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if names is None:
        return available
    chosen = []
    for name in names:
        path = Path(name)
        if path.suffix == ".ipynb" and path.is_file():
            chosen.append(path.resolve())
            continue
        matches = [p for p in available if p.stem == path.stem or p.stem.startswith(f"{path.stem}_")]
        if len(matches) != 1:
            raise ValueError(f"unknown notebook {name!r}: pass one of {[p.stem for p in available]} (or a path)")
        chosen.append(matches[0])
    return chosen


def start_order(paths: Sequence[Path]) -> list[Path]:
    """``paths`` with those named in :data:`LONGEST_FIRST` first (in its order), the others in file order."""
    rank = {stem: i for i, stem in enumerate(LONGEST_FIRST)}
    return sorted(paths, key=lambda path: rank.get(path.stem, len(rank)))


# --------------------------------------------------------------------------- kernel


def _kernel_manager_class() -> type:
    """An nbclient kernel manager that always starts ``sys.executable -m ipykernel_launcher``.

    A kernelspec named ``python3`` elsewhere on the machine (e.g. ``~/.local/share/jupyter``)
    could point at another Python without lnlab; this pins the kernel to the running one.
    """
    from ipykernel.kernelspec import RESOURCES
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class CurrentPythonKernelManager(AsyncKernelManager):
        @default("transport")
        def _local_socket_transport(self) -> str:  # a local socket, not TCP (ipykernel warns on TCP)
            return "ipc" if os.name == "posix" else "tcp"

        @default("ip")
        def _own_socket_path(self) -> str:  # ipc: sockets of its own (the default "kernel-ipc" in the
            if self.transport != "ipc":     # cwd is shared by kernels started at once from one folder)
                return super()._ip_default()
            return os.path.join(tempfile.gettempdir(), f"lnlab-kernel-{uuid.uuid4().hex}-ipc")

        @property
        def kernel_spec(self) -> KernelSpec:
            if self._kernel_spec is None:
                self._kernel_spec = KernelSpec(
                    argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                    display_name=KERNEL_DISPLAY_NAME, language="python",
                    resource_dir=RESOURCES, name=KERNEL_NAME)
            return self._kernel_spec

    return CurrentPythonKernelManager


# --------------------------------------------------------------------------- run


@contextlib.contextmanager
def _kernel_threads(threads: int) -> Iterator[None]:
    """Kernels started inside use ``threads`` CPU threads (OpenMP / MKL, read by torch at start-up)
    unless the caller set them: two kernels at once must not each use every core."""
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {name: os.environ.get(name) for name in names}
    for name in names:
        os.environ.setdefault(name, str(threads))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)


def run_suite(profile: str = "reference", output: str | os.PathLike | None = "figures", device: str = "auto",
              notebooks: Sequence[str] | None = None, data_root: str | os.PathLike | None = None,
              runs_root: str | os.PathLike | None = None, log_output: bool = False,
              extra_parameters: dict[str, Any] | None = None, pretrain: bool = True,
              jobs: int | None = None) -> list[Path]:
    """Execute the suite's notebooks in order with papermill; return the figure files written.

    ``output`` (default ``figures/``; ``None``: ``$LNLAB_FIGURES`` or ``figures/``) receives the
    executed notebooks and every figure (``<notebook-stem>_<figure>.pdf/.png``). ``runs_root``
    (default ``$LNLAB_RUNS`` or ``runs/``) is shared by all notebooks. ``notebooks`` picks a
    subset by stem or number prefix (``["01", "03_lower_bound"]``). Training progress bars are
    off in the executed notebooks (``progress=False`` is injected). A failing cell raises
    :class:`NotebookError` naming the notebook and the error; the executed notebook with its
    traceback is still written to ``output``. ``pretrain`` first trains (or loads) the runs the
    notebooks share, with progress bars in this process, since training inside them is silent.
    ``jobs`` notebooks run at once (default: one per CPU core, at most 4), each kernel with its share
    of the cores' threads: a notebook is mostly single-threaded Python (imports, plotting), so two
    at a time on two cores take about half the time; runs still train one at a time (``pretrain``,
    and the run cache's lock where a notebook trains).
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    paths = notebook_paths(notebooks)
    if not paths:
        raise ValueError(f"no notebooks to run in {NOTEBOOKS_DIR}: pass notebooks=['01', ...] or add NN_*.ipynb files")
    out_dir = figures_root(output)
    out_dir.mkdir(parents=True, exist_ok=True)
    parameters = {
        "profile": profile,
        "device": device,
        "output": str(out_dir),
        "data_root": str(Path(data_root).expanduser().resolve()) if data_root else None,
        "runs_root": str(default_runs_root(runs_root)),
        "progress": False,  # tqdm's widget bars would clutter the executed notebooks
        **(extra_parameters or {}),
    }
    if profile == REFERENCE:
        parameters["sweep_taus"] = sweep_taus(profile, parameters.get("sweep_taus"), parameters.get("dataset"))
    if log_output:
        logging.getLogger("papermill").setLevel(logging.INFO)
        logging.basicConfig(level=logging.WARNING)
    if pretrain:
        sweeps = any("sweep_taus" in _declared(path) for path in paths)
        _train_shared_runs({**parameters, "sweep_taus": parameters.get("sweep_taus", ()) if sweeps else ()})
    jobs = max(1, min(jobs or min(os.cpu_count() or 1, 4), len(paths)))

    def execute(path: Path) -> None:
        executed = out_dir / path.name
        print(f"[lnlab figures] running {path.name} (profile={profile}, device={device})", flush=True)
        try:
            declared = _declared(path)  # a notebook gets only the parameters it declares (no papermill warning)
            pm.execute_notebook(str(path), str(executed), kernel_name=KERNEL_NAME,
                                parameters={k: v for k, v in parameters.items() if k in declared},
                                language="python", cwd=str(path.parent), log_output=log_output,
                                progress_bar=jobs == 1 and not log_output,
                                kernel_manager_class=_kernel_manager_class())
        except PapermillExecutionError as error:
            raise NotebookError(
                f"notebook {path.name} failed in cell {error.exec_count} with {error.ename}: {error.evalue} "
                f"(executed notebook with the traceback: {executed})") from error

    if jobs == 1:
        for path in paths:
            execute(path)
    else:
        with _kernel_threads(max(1, (os.cpu_count() or 1) // jobs)), ThreadPoolExecutor(jobs) as pool:
            futures = {path: pool.submit(execute, path) for path in start_order(paths)}
            for path in paths:  # in file order: the first failure raises
                futures[path].result()
    written = [p for path in paths for p in sorted(out_dir.glob(f"{path.stem}_*")) if p.suffix in (".pdf", ".png")]
    print(f"[lnlab figures] {len(written)} figure files and {len(paths)} executed notebooks in {out_dir}")
    for figure in written:
        print(f"  {figure}")
    from lnlab.report import write_index

    index = write_index(out_dir, [out_dir / path.name for path in paths])
    print(f"[lnlab figures] every figure and table on one page: {index}")
    return written


# --------------------------------------------------------------------------- runs for the notebooks


def _parameters_source(path: Path) -> str:
    """The source of a notebook's ``parameters`` cell ("" if it has none)."""
    import nbformat  # here, not at the top: every notebook kernel imports this module, and nbformat's schema
    # validation imports jsonschema's format checkers (rfc3987-syntax compiles a grammar: 1.5-2 s per kernel)

    cells = nbformat.read(path, as_version=4).cells
    return next((c.source for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])), "")


def _declared(path: Path) -> set[str]:
    """Names assigned in a notebook's ``parameters`` cell."""
    import ast

    tree = ast.parse(_parameters_source(path) or "pass")
    return {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}


def sweep_taus(profile: str, asked: Sequence[float] | None = None, dataset: str | None = None) -> list[float]:
    """The τ grid of notebook 04 (:func:`lnlab.profiles.sweep_taus`), printing which asked values the
    reference runs (of ``dataset``'s recipe) lack; ValueError before any notebook starts if the reference
    profile has no runs."""
    kept = profiles.sweep_taus(profile, asked, dataset)
    if asked is not None and kept != [float(t) for t in asked]:
        print(f"[lnlab figures] reference runs: sweeping τ {kept} (of the asked {list(asked)})", flush=True)
    return kept


def _train_shared_runs(parameters: dict[str, Any]) -> None:
    """Train (or load) the CE + LogitNorm runs every notebook asks for, with progress bars here.

    Inside the notebooks training is silent (``progress=False``), so the long part of a suite
    happens first, visibly, and the notebooks then load the runs from the shared cache. The τ grid
    ``sweep_taus`` is trained too when a chosen notebook has that parameter (04).
    """
    print(f"[lnlab figures] training or loading the {parameters['profile']} runs "
          f"(cache: {parameters['runs_root']})", flush=True)
    taus = list(dict.fromkeys([*(parameters.get("taus") or (0.04,)), *(parameters.get("sweep_taus") or ())]))
    comparison_runs(parameters["profile"], taus=taus, device=parameters["device"],
                    data_root=parameters["data_root"], runs_root=parameters["runs_root"],
                    oods=parameters.get("oods"), progress=True, seeds=parameters.get("seeds", (0,)),
                    dataset=parameters.get("dataset"))



# --------------------------------------------------------------------------- stored notebooks


def notebook_problems(path: str | os.PathLike) -> list[str]:
    """Why a stored notebook is not clean: outputs, execution counts, no ``parameters``-tagged cell, or a
    kernelspec other than ``lnlab``."""
    import nbformat  # where used (see _parameters_source)

    nb = nbformat.read(path, as_version=4)
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            problems.append(f"cell {i} has outputs")
        if cell.get("execution_count") is not None:
            problems.append(f"cell {i} has an execution count")
    if not any("parameters" in cell.get("metadata", {}).get("tags", []) for cell in nb.cells):
        problems.append("no cell tagged 'parameters' (papermill injects parameters after it)")
    kernel = nb.metadata.get("kernelspec", {}).get("name")
    if kernel != KERNEL_NAME:
        problems.append(f"kernelspec {kernel!r} instead of {KERNEL_NAME!r} (JupyterLab would ask for a kernel)")
    return problems


def strip_notebook(path: str | os.PathLike) -> bool:
    """Remove outputs, execution counts and per-cell execution metadata, name the ``lnlab`` kernel; in place.

    Returns whether the file changed."""
    import nbformat  # where used (see _parameters_source)

    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in ("execution", "papermill", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
    for key in ("papermill", "widgets"):
        nb.metadata.pop(key, None)
    nb.metadata["kernelspec"] = {"display_name": KERNEL_DISPLAY_NAME, "language": "python", "name": KERNEL_NAME}
    after = nbformat.writes(nb)
    if after != before:
        Path(path).write_text(after + ("" if after.endswith("\n") else "\n"), encoding="utf-8")
    return after != before
