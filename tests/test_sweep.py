"""Sweeps (lnlab.sweep): Ray tasks give the same cache entries as training one after another; failures and
Ctrl-C keep the other runs; cached runs are not retrained."""

from __future__ import annotations

import json
import os

import pytest
import torch

from lnlab.profiles import make_config
from lnlab.store import RESULT_FILES, load_run
from lnlab.sweep import run_sweep
from tests_support import TINY, requires_cifar10

pytestmark = requires_cifar10

# Three configs of the ci profile, shrunk (seconds each on a CPU), and one that diverges at once.
CONFIGS = [make_config("ci", **TINY, loss="ce"),
           make_config("ci", **TINY, loss="logitnorm", tau=0.04),
           make_config("ci", **TINY, loss="logitnorm", tau=0.04, seed=1)]
DIVERGING = make_config("ci", **TINY, loss="ce", lr=1e6)


def _entry(root, config) -> dict:
    """What a cache entry holds: its files, history without wall times, final logits and weights."""
    directory = root / config.key()
    run = load_run(directory, config)  # verifies every file against the manifest
    history = [{k: v for k, v in row.items() if k != "seconds"} for row in run.history]
    meta = json.loads((directory / "config.json").read_text())
    for varying in ("wall_seconds", "threads"):  # where and how it was made must agree; time and threads need not
        meta["provenance"].pop(varying)
    return {"files": sorted(p.name for p in directory.iterdir() if p.name in RESULT_FILES + ("manifest.json",)),
            "eval": sorted(p.name for p in (directory / "eval").iterdir()),
            "history": history, "config": meta,
            "logits": torch.load(directory / "logits.pt", weights_only=True)["logits"],
            "weights": torch.load(directory / "model.pt", weights_only=True)}


def _assert_same(a: dict, b: dict) -> None:
    """Bit-identical: same files, same history (wall times aside), same logits and weights."""
    assert a["files"] == b["files"] and a["eval"] == b["eval"] and a["config"] == b["config"]
    assert a["history"] == b["history"]
    assert a["logits"].keys() == b["logits"].keys() and a["weights"].keys() == b["weights"].keys()
    assert all(torch.equal(a["logits"][name], b["logits"][name]) for name in a["logits"])
    assert all(torch.equal(a["weights"][name], b["weights"][name]) for name in a["weights"])


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    """The configs trained one after another, with the thread count a Ray task gets at --parallel 2
    (float32 sums on a CPU depend on the thread count; the same count gives the same bits)."""
    root = tmp_path_factory.mktemp("sequential")
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))
    try:
        result = run_sweep(CONFIGS, root=root, parallel=1, progress=False, report=lambda line: None)
    finally:
        torch.set_num_threads(threads)
    assert result.engine == "sequential" and not result.failures and len(result.trained) == 3
    return root


@pytest.mark.slow
@pytest.mark.parametrize("share_filesystem", [None, False], ids=["shared-cache", "files-copied-back"])
def test_a_ray_sweep_gives_the_entries_of_a_sequential_one_and_reports_a_failing_run(
        sequential, tmp_path, share_filesystem):
    pytest.importorskip("ray", reason="Ray is the optional extra lnlab[ray] (make env installs it)")
    lines: list[str] = []
    result = run_sweep([*CONFIGS, DIVERGING], root=tmp_path, parallel=2, report=lines.append,
                       share_filesystem=share_filesystem)
    assert result.engine == "ray"
    assert [f.config.key() for f in result.failures] == [DIVERGING.key()]
    assert "TrainingDivergedError" in result.failures[0].error and "diverged" in result.failures[0].error
    assert any("FAILED" in line and DIVERGING.key() in line for line in lines)
    assert sorted(result.runs) == sorted(c.key() for c in CONFIGS) and sorted(result.trained) == sorted(result.runs)
    how = "files copied back" if share_filesystem is False else "in the shared cache"
    assert sum(how in line for line in lines) == 3
    for config in CONFIGS:
        _assert_same(_entry(tmp_path, config), _entry(sequential, config))
    assert not list(tmp_path.glob(".sweep-*")), "the shared-filesystem token is removed"


def test_cached_runs_are_not_retrained(sequential, monkeypatch):
    import lnlab.train

    monkeypatch.setattr(lnlab.train, "train", lambda *a, **k: pytest.fail("retrained a cached run"))
    lines: list[str] = []
    result = run_sweep(CONFIGS, root=sequential, parallel=1, report=lines.append)
    assert result.trained == [] and sorted(result.runs) == sorted(c.key() for c in CONFIGS)
    assert sum(line.endswith(": cached") for line in lines) == 3


def test_ctrl_c_keeps_the_finished_runs(tmp_path, monkeypatch):
    import lnlab.runs

    real = lnlab.runs.get_run
    calls = []

    def interrupt_second(config, **kwargs):
        calls.append(config.key())
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(config, **kwargs)

    monkeypatch.setattr(lnlab.runs, "get_run", interrupt_second)
    lines: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        run_sweep(CONFIGS, root=tmp_path, parallel=1, progress=False, report=lines.append)
    assert load_run(tmp_path / CONFIGS[0].key(), CONFIGS[0]).history
    assert not (tmp_path / CONFIGS[1].key() / "manifest.json").exists()
    assert "interrupted: 1 finished runs kept" in lines[-1]


def test_without_ray_the_sweep_says_so_and_runs_one_after_another(sequential, monkeypatch, tmp_path):
    import lnlab.sweep

    monkeypatch.setattr(lnlab.sweep, "ray_available", lambda: False)
    lines: list[str] = []
    result = run_sweep(CONFIGS[:2], root=tmp_path, parallel=2, progress=False, report=lines.append)
    assert result.engine == "sequential" and len(result.trained) == 2
    assert "Ray is not installed" in lines[0] and "the 2 runs one after another" in lines[0]
    with pytest.raises(ValueError, match="--address needs Ray"):
        run_sweep(CONFIGS, root=sequential, address="auto", report=lines.append)


@pytest.mark.parametrize("parallel", [0, -1, 1.5, True])
def test_bad_parallel_is_refused_before_any_work(parallel, tmp_path):
    with pytest.raises(ValueError, match="parallel must be a positive integer"):
        run_sweep(CONFIGS, root=tmp_path, parallel=parallel)
    assert not any(tmp_path.iterdir())


def test_files_sent_back_replace_the_entry_whole(sequential, tmp_path):
    """A worker's files replace whatever the entry held (stale evaluation results, a checkpoint)."""
    from lnlab.sweep import _install

    config = CONFIGS[1]
    source = sequential / config.key()
    files = {str(p.relative_to(source)): p.read_bytes() for p in source.rglob("*")
             if p.is_file() and p.name != ".lock"}
    stale = tmp_path / config.key()
    (stale / "eval").mkdir(parents=True)
    (stale / "eval" / "logits-textures-0000000000000000.pt").write_bytes(b"old weights' logits")
    (stale / "checkpoint.pt").write_bytes(b"half a run")
    _install(tmp_path, config, files)
    assert sorted(p.name for p in stale.iterdir()) == sorted(p.name for p in source.iterdir() if p.name != ".lock")
    assert not (stale / "eval" / "logits-textures-0000000000000000.pt").exists()
    _assert_same(_entry(tmp_path, config), _entry(sequential, config))
    assert [p.name for p in tmp_path.iterdir()] == [config.key()], "no staging folder is left behind"
    with pytest.raises(ValueError, match="refused"):
        _install(tmp_path, config, {**files, "../outside.pt": b"x"})
    assert not (tmp_path.parent / "outside.pt").exists()
    damaged = {**files, "model.pt": files["model.pt"][:-10]}
    with pytest.raises(Exception, match="model.pt"):
        _install(tmp_path, config, damaged)
    load_run(stale, config)  # the entry is untouched by the refused copies


def test_ray_resource_requests_fit_the_nodes(monkeypatch):
    ray = pytest.importorskip("ray", reason="Ray is the optional extra lnlab[ray]")
    from lnlab.sweep import _for_workers, _task_options

    cluster = [{"Alive": True, "Resources": {"CPU": 16.0, "GPU": 1.0}} for _ in range(4)]
    monkeypatch.setattr(ray, "nodes", lambda: cluster)
    gpu_run = make_config("ci", device="cuda:1")
    options = _task_options([CONFIGS[0], _for_workers(gpu_run)], parallel=6)
    cpu_opts, cpu_threads = options[False]
    gpu_opts, gpu_threads = options[True]
    assert cpu_opts == {"num_cpus": 2} and cpu_threads == 2  # 16 cores of one node / 6, not of the whole cluster
    assert 6 * gpu_opts["num_gpus"] <= 1 < 7 * gpu_opts["num_gpus"] and gpu_threads == 2
    assert _for_workers(gpu_run).device == "cuda" and _for_workers(gpu_run).key() == gpu_run.key()
    monkeypatch.setattr(ray, "nodes", lambda: [{"Alive": True, "Resources": {"CPU": 2.0}}])
    with pytest.raises(ValueError, match="need a GPU .* has none"):
        _task_options([_for_workers(gpu_run)], parallel=2)
