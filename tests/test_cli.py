"""CLI: eval / sweep / train print tables from cached runs; bad input exits 2 with one line."""

from __future__ import annotations

import pytest

from lnlab.cli import _parse_value, main
from tests_support import ci_pair, ci_root


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    ci_pair(tmp_path_factory)  # trains the ci pair once per session (or reuses $LNLAB_RUNS)
    return ci_root(tmp_path_factory)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["ce", "logitnorm"])
def test_eval_prints_a_block_per_score_and_skips_missing_default_sets(root, loss, capsys):
    rc = main(["eval", "--profile", "ci", "--loss", loss, "--tau", "0.04", "--scores", "msp", "energy",
               "--set", "ood=svhn,mnist,gaussian", "--runs", root, "--no-progress"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "MSP" in out and "Energy" in out and "FPR95" in out and "AUROC" in out
    assert "test accuracy" in out and "mnist" in out and "gaussian" in out and "mean" in out
    assert "svhn" not in out and "skipping OOD set 'svhn'" in err


@pytest.mark.slow
def test_eval_of_a_new_set_reuses_the_cached_run_without_training(root, capsys, monkeypatch):
    import lnlab.train

    monkeypatch.setattr(lnlab.train, "train", lambda *a, **k: pytest.fail("trained a cached run"))
    rc = main(["eval", "--profile", "ci", "--ood", "uniform", "gaussian_pixel", "--runs", root, "--no-progress"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "uniform" in out and "gaussian_pixel" in out


@pytest.mark.slow
def test_sweep_and_train_reuse_the_cache(root, capsys):
    assert main(["sweep", "--profile", "ci", "--taus", "0.04", "--runs", root, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "LogitNorm τ=0.04" in out and "msp_auroc" in out and out.count("True") == 2  # both cached
    # it ends with the validation pick, its stability over seeds, and the command that draws these runs
    assert "Only τ = 0.04 is trained so far (seeds [0]): nothing to choose between yet." in out  # one τ: no choice
    assert f"lnlab figures --profile ci --notebooks 04 --sweep-taus 0.04 --seeds 0 --runs {root}" in out
    assert main(["train", "--profile", "ci", "--runs", root, "--no-progress"]) == 0
    assert "cached" in capsys.readouterr().out


def test_sweep_of_the_reference_profile_reads_the_shipped_study_and_trains_nothing(capsys, monkeypatch):
    import lnlab.train
    from lnlab.shipped import recipe_for, reference_runs

    monkeypatch.setattr(lnlab.train, "train", lambda *a, **k: pytest.fail("trained a shipped run"))
    shipped = reference_runs(recipe_for("tinyimagenet100"))
    taus = sorted({param for loss, param, _ in shipped if loss == "logitnorm"})
    assert main(["sweep", "--profile", "reference", "--dataset", "tinyimagenet100", "--no-progress"]) == 0
    out = capsys.readouterr().out
    rows = {}  # label -> (seeds column, shipped column) of the summary table
    for parts in (line.split() for line in out.splitlines()):
        if parts[:1] == ["CE"] or parts[:1] == ["LogitNorm"] and parts[1].startswith("τ="):
            label, seeds = ("ce", parts[1]) if parts[0] == "CE" else (float(parts[1][2:]), parts[2])
            rows[label] = (int(seeds), parts[-1])
    assert list(rows) == ["ce", *taus]  # CE and every shipped τ, nothing else
    for label, (seeds, found) in rows.items():  # each group with all of its own shipped seeds, none trained
        kind = ("ce", None) if label == "ce" else ("logitnorm", label)
        assert found == "True" and seeds == sum(1 for loss, param, _ in shipped if (loss, param) == kind)
    assert "Validation picks τ = " in out
    assert ("lnlab figures --profile reference --notebooks 04 --sweep-taus "
            + " ".join(f"{tau:g}" for tau in taus) + " --dataset tinyimagenet100") in out


@pytest.mark.parametrize("argv, message", [
    (["train", "--profile", "huge"], "unknown profile"),
    (["train", "--loss", "logitnorm", "--tau", "-1"], "tau"),
    (["train", "--set", "lr"], "KEY=VALUE"),
    (["train", "--set", "learning_rate=0.1"], "valid fields"),
    (["eval", "--scores", "softmax"], "unknown score"),
    (["eval", "--ood", "no_such_set"], "not a registered dataset"),
    (["eval", "--ood", "cifar10"], "cannot be OOD sets"),
    (["train", "--seeds", "0", "0"], "distinct"),
    (["sweep", "--taus", "0"], "tau"),
    (["sweep", "--parallel", "0"], "parallel must be a positive integer"),
    (["train", "--profile", "reference"], "never trained here"),
    (["sweep", "--profile", "reference", "--taus", "0.3"], "have no LogitNorm τ=0.3 seed 0; they hold CE seeds"),
    (["sweep", "--profile", "reference", "--parallel", "2"], "the reference profile only reads the shipped ones"),
    (["train", "--loss", "focal"], "unknown loss"),
    (["train", "--loss", "logit_penalty", "--penalty", "-1"], "penalty must be"),
    (["train", "--loss", "label_smoothing", "--smoothing", "1.5"], "smoothing must be below 1"),
    (["train", "--dataset", "nowhere_at_all"], "unknown dataset 'nowhere_at_all'"),
    (["eval", "--dataset", "tinyimagenet100", "--ood", "tinyimagenet"], "use 'tinyimagenet100-other' instead"),
    (["sweep", "--dataset", "mnist"], "is an OOD set, not a training set"),
])
def test_bad_input_prints_one_line_and_exits_2_before_any_training(argv, message, capsys, monkeypatch):
    import lnlab.runs

    monkeypatch.setattr(lnlab.runs, "get_run", lambda *a, **k: pytest.fail("trained on bad input"))
    assert main(argv + ["--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_set_values_are_parsed():
    assert _parse_value("0.05") == 0.05 and _parse_value("none") is None and _parse_value("true") is True
    assert _parse_value("mnist,gaussian") == ("mnist", "gaussian") and _parse_value("cosine") == "cosine"
    assert _parse_value('["a", "b"]') == ("a", "b")
