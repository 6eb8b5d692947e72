"""Run cache: cache hits, kill -9 and resume, corrupt files, listing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import lnlab.train
from lnlab.profiles import make_config
from lnlab.runs import get_run, list_runs, load_run
from tests_support import TINY, ci_pair, requires_cifar10

pytestmark = requires_cifar10


def _without_seconds(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def _no_training(*args, **kwargs):
    raise AssertionError("get_run trained although the run is cached")


@pytest.mark.slow
def test_second_get_run_comes_from_the_cache_without_training(tmp_path_factory, monkeypatch):
    first = ci_pair(tmp_path_factory)["ce"]
    monkeypatch.setattr(lnlab.train, "train", _no_training)
    again = get_run(first.config, root=first.directory.parent, progress=False)
    assert again.from_cache and again.key == first.key
    assert again.history == first.history
    assert all(torch.equal(again.logits[k], first.logits[k]) for k in first.logits)


def test_kill_and_resume_equals_an_uninterrupted_run(tmp_path):
    config = make_config("ci", **TINY)
    killed_root, clean_root = tmp_path / "killed", tmp_path / "clean"
    script = textwrap.dedent(f"""
        import os, json
        from lnlab.train import TrainConfig
        from lnlab.runs import get_run
        config = TrainConfig.from_dict(json.loads({json.dumps(json.dumps(config.to_dict()))}))
        def kill_after_epoch_1(epoch, row):
            if epoch == 1:
                os._exit(9)  # like kill -9: no cleanup, no exception handling
        get_run(config, root={str(killed_root)!r}, progress=False, callbacks=[kill_after_epoch_1])
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=os.environ.copy())
    assert proc.returncode == 9, proc.stderr[-2000:]
    directory = killed_root / config.key()
    assert (directory / "checkpoint.pt").exists() and not (directory / "manifest.json").exists()

    epochs_trained = []
    resumed = get_run(config, root=killed_root, progress=False, callbacks=[lambda e, row: epochs_trained.append(e)])
    assert epochs_trained == [2, 3] and not resumed.from_cache
    assert not (directory / "checkpoint.pt").exists()
    clean = get_run(config, root=clean_root, progress=False)
    assert _without_seconds(resumed.history) == _without_seconds(clean.history)
    assert set(resumed.logits) == set(clean.logits) == {"test", "gaussian"}
    for name in clean.logits:
        assert torch.equal(resumed.logits[name], clean.logits[name]), name
    assert torch.equal(resumed.labels, clean.labels)


def test_two_processes_asking_for_one_run_train_it_once(tmp_path):
    """The second process waits for the first (file lock) and then loads the run from the cache."""
    config = make_config("ci", **TINY)
    log = tmp_path / "epochs.log"
    script = textwrap.dedent(f"""
        import json
        from lnlab.train import TrainConfig
        from lnlab.runs import get_run
        config = TrainConfig.from_dict(json.loads({json.dumps(json.dumps(config.to_dict()))}))
        def log_epoch(epoch, row):
            with open({str(log)!r}, "a") as handle:
                handle.write(f"{{epoch}}\\n")
        run = get_run(config, root={str(tmp_path / "runs")!r}, progress=False, callbacks=[log_epoch])
        print("cached" if run.from_cache else "trained")
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=os.environ.copy()) for _ in range(2)]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err[-2000:] for _, err in outputs]
    assert sorted(out.strip() for out, _ in outputs) == ["cached", "trained"]
    assert log.read_text().split() == ["1", "2", "3"]


def test_truncated_history_is_detected_and_the_run_recomputed(tmp_path, monkeypatch):
    config = make_config("ci", **{**TINY, "epochs": 2})
    run = get_run(config, root=tmp_path, progress=False)
    history_file = run.directory / "history.json"
    history_file.write_bytes(history_file.read_bytes()[:50])
    with pytest.warns(UserWarning, match="history.json.*recomputing"):
        again = get_run(config, root=tmp_path, progress=False)
    assert not again.from_cache
    assert _without_seconds(again.history) == _without_seconds(run.history)
    assert get_run(config, root=tmp_path, progress=False).from_cache


@pytest.mark.parametrize("victim", ["logits.pt", "model.pt", "manifest.json"])
def test_corrupt_or_missing_files_are_recomputed(tmp_path, victim):
    config = make_config("ci", **{**TINY, "epochs": 1})
    run = get_run(config, root=tmp_path, progress=False)
    if victim == "model.pt":
        (run.directory / victim).unlink()
    else:
        (run.directory / victim).write_bytes(b"\x00garbage")
    with pytest.warns(UserWarning, match="recomputing"):
        again = get_run(config, root=tmp_path, progress=False)
    assert torch.equal(again.logits["test"], run.logits["test"])


def test_corrupt_checkpoint_is_discarded_and_training_starts_over(tmp_path):
    config = make_config("ci", **{**TINY, "epochs": 1})
    directory = tmp_path / config.key()
    directory.mkdir(parents=True)
    (directory / "checkpoint.pt").write_bytes(b"not a checkpoint")
    epochs = []
    with pytest.warns(UserWarning, match="discarding checkpoint"):
        run = get_run(config, root=tmp_path, progress=False, callbacks=[lambda e, row: epochs.append(e)])
    assert epochs == [1] and len(run.history) == 1


def test_run_api_load_run_and_list_runs(tmp_path):
    ce = get_run(make_config("ci", **{**TINY, "epochs": 1}), root=tmp_path, progress=False)
    ln = get_run(make_config("ci", **{**TINY, "epochs": 1, "loss": "logitnorm"}), root=tmp_path, progress=False)
    assert {r.key for r in list_runs(tmp_path)} == {ce.key, ln.key}
    loaded = load_run(ln.directory)
    assert loaded.config.key() == ln.config.key() and loaded.final_train_loss == ln.history[-1]["train_loss"]
    assert set(ln.config.ood) <= set(loaded.config.ood)  # the stored config names every OOD set it tracked
    frame = loaded.history_frame()
    assert frame.index.name == "epoch" and "norm_gaussian_p90" in frame.columns
    model = loaded.model()
    assert not model.training and next(model.parameters()).device.type == "cpu"
    from lnlab.evaluate import eval_loader, predict
    from lnlab.splits import eval_set

    images = eval_set(loaded.config, "test").images
    from lnlab.precision import use_bf16

    bf16 = use_bf16(loaded.config.amp, "cpu")  # the precision the run was evaluated in
    assert torch.allclose(predict(model, eval_loader(images, torch.device("cpu"), True), bf16), loaded.logits["test"],
                          atol=1e-4)
    (ce.directory / "history.json").write_text("[]")  # corrupt entries are skipped by list_runs
    assert [r.key for r in list_runs(tmp_path)] == [ln.key]
