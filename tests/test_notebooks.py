"""Stored notebooks are clean and parameterised; run_suite executes notebooks in this interpreter's kernel.

The real notebooks are executed by `.ci/run` (`lnlab figures --profile ci`), not here; the suite
runner is tested on tiny throw-away notebooks so the test stays fast (one kernel start each).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from lnlab import suite

NOTEBOOKS = suite.notebook_paths()
SUITE_PARAMETERS = {"profile", "device", "data_root", "runs_root", "taus", "seeds", "oods", "output", "progress"}


def test_suite_has_every_notebook_in_order():
    assert [p.stem for p in NOTEBOOKS] == ["00_mechanism", "01_logit_norm_growth", "02_msp_histograms", "03_lower_bound",
                                           "04_tau_study", "05_ood_table", "06_calibration",
                                           "07_tau_and_classes", "08_your_network", "09_what_fixes_overconfidence"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs_and_has_parameters_cell(path):
    assert suite.notebook_problems(path) == []
    nb = nbformat.read(path, as_version=4)
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assigned = {t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign) for t in node.targets}
    assert SUITE_PARAMETERS <= assigned


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_thin(path):
    """Shared logic lives in lnlab: notebooks define no functions or classes and import lnlab."""
    code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    tree = ast.parse("\n".join(line for line in code.splitlines() if not line.startswith("%")))  # skip magics
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    assert "from lnlab import" in code


def test_notebook_problems_and_strip(tmp_path):
    nb = new_notebook(cells=[new_code_cell("x = 1", execution_count=3,
                                           outputs=[nbformat.v4.new_output("stream", text="1")])])
    path = tmp_path / "dirty.ipynb"
    nbformat.write(nb, path)
    problems = suite.notebook_problems(path)
    assert any("outputs" in p for p in problems) and any("parameters" in p for p in problems)
    assert suite.strip_notebook(path) is True
    assert [p for p in suite.notebook_problems(path) if "parameters" not in p] == []
    assert suite.strip_notebook(path) is False


def _tiny_notebook(path, body: str) -> None:
    params = new_code_cell('profile = "quick"\ndevice = "auto"\noutput = None\ndata_root = None\nruns_root = None')
    params.metadata["tags"] = ["parameters"]
    nbformat.write(new_notebook(cells=[params, new_code_cell(body)]), path)


def test_run_suite_injects_parameters_uses_this_python_and_reports_failures(tmp_path, capsys):
    folder = tmp_path / "nbs"
    folder.mkdir()
    _tiny_notebook(folder / "01_tiny.ipynb", (
        "import sys\nfrom lnlab import bound_plots, plots\n"
        f"assert sys.executable == {sys.executable!r}, sys.executable\n"
        "assert profile == 'ci' and device == 'cpu'\n"
        "plots.save_figure(bound_plots.plot_lower_bound(ks=(10,)), '01_tiny_bound', output)"))
    _tiny_notebook(folder / "02_broken.ipynb", "raise KeyError('no such run')")
    out = tmp_path / "out"

    written = suite.run_suite(profile="ci", output=out, device="cpu", notebooks=[str(folder / "01_tiny.ipynb")],
                              runs_root=tmp_path / "runs", pretrain=False)
    assert sorted(p.name for p in written) == ["01_tiny_bound.pdf", "01_tiny_bound.png"]
    assert (out / "01_tiny.ipynb").is_file() and str(out) in capsys.readouterr().out

    with pytest.raises(suite.NotebookError, match=r"02_broken\.ipynb failed in cell .*KeyError.*no such run"):
        suite.run_suite(profile="ci", output=out, notebooks=[str(folder / "02_broken.ipynb")], pretrain=False)
    assert (out / "02_broken.ipynb").is_file()


def test_run_suite_runs_notebooks_at_once_each_with_its_kernel_and_threads(tmp_path):
    # two kernels started together from one folder: each gets its own sockets and half the cores' threads
    folder = tmp_path / "nbs"
    folder.mkdir()
    for name in ("01_a", "02_b", "03_c"):
        _tiny_notebook(folder / f"{name}.ipynb", (
            "import os, time\nfrom pathlib import Path\nstart = time.time()\ntime.sleep(1.5)\n"
            f"Path(output, '{name}.txt').write_text(f\"{{os.getpid()}} {{os.environ.get('OMP_NUM_THREADS', '')}} "
            "{start} {time.time()}\")"))
    _tiny_notebook(folder / "04_broken.ipynb", "raise KeyError('no such run')")
    out = tmp_path / "out"
    paths = [str(folder / f"{name}.ipynb") for name in ("01_a", "02_b", "03_c")]
    before = os.environ.get("OMP_NUM_THREADS")  # a caller's setting wins
    suite.run_suite(profile="ci", output=out, notebooks=paths, runs_root=tmp_path / "runs", pretrain=False, jobs=2)
    written = {name: (out / f"{name}.txt").read_text().split() for name in ("01_a", "02_b", "03_c")}
    assert len({pid for pid, *_ in written.values()}) == 3  # one kernel per notebook
    assert {threads for _, threads, *_ in written.values()} == {before or str(max(1, (os.cpu_count() or 1) // 2))}
    (_, _, a0, a1), (_, _, b0, b1) = written["01_a"], written["02_b"]
    assert float(a0) < float(b1) and float(b0) < float(a1), "01 and 02 did not run at the same time"
    assert os.environ.get("OMP_NUM_THREADS") == before  # this process's environment is restored
    assert (out / "index.html").is_file()
    with pytest.raises(suite.NotebookError, match=r"04_broken\.ipynb failed in cell .*KeyError"):
        suite.run_suite(profile="ci", output=out, notebooks=[paths[0], str(folder / "04_broken.ipynb")],
                        runs_root=tmp_path / "runs", pretrain=False, jobs=2)


def test_unknown_notebook_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown notebook"):
        suite.notebook_paths(["99_nope"])


def test_the_longest_notebooks_start_first_and_exist():
    # a renamed notebook would silently drop out of LONGEST_FIRST: every name must be a notebook of the suite
    stems = [path.stem for path in NOTEBOOKS]
    assert set(suite.LONGEST_FIRST) <= set(stems)
    order = [path.stem for path in suite.start_order(NOTEBOOKS)]
    assert order[:len(suite.LONGEST_FIRST)] == list(suite.LONGEST_FIRST)
    rest = [stem for stem in stems if stem not in suite.LONGEST_FIRST]
    assert order[len(suite.LONGEST_FIRST):] == rest and sorted(order) == sorted(stems)


def test_a_notebook_kernel_importing_lnlab_does_not_import_nbformat():
    # nbformat imports jsonschema's format checkers (rfc3987-syntax compiles a grammar, 1.5-2 s), and nine of the ten
    # notebooks import lnlab.suite: the suite's own process reads notebooks, the kernels need not
    code = ("import sys; from lnlab import calibration, comparisons, evaluate, foreign, plots, suite, tables, tau, "
            "widgets; print(sorted(m for m in ('nbformat', 'jsonschema', 'papermill') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
