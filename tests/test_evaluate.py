"""The evaluation layer: cache key, logits on any set without retraining, user sets, the OOD table, pairing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _synthetic import OODS, fake_run, logits
from PIL import Image

import lnlab.runs
import lnlab.train
from lnlab import evaluate, suite, tables
from lnlab.data import DatasetNotFoundError, normalize
from lnlab.metrics import ood_metrics
from lnlab.models import build_model
from lnlab.profiles import make_config
from lnlab.runs import Seeds, get_run
from lnlab.scores import score
from tests_support import TINY, requires_cifar10

# sha256 key of make_config("ci") (ENGINE_VERSION 3). A refactor that changes it silently orphans every cache
# entry; if the change is intended, bump ENGINE_VERSION, update this literal and say so in the README.
CI_KEY = "f5404fd3eb860a9d"


def _no_training(*args, **kwargs):
    raise AssertionError("trained although the run is cached")


# --------------------------------------------------------------------------- cache key


def test_cache_key_of_the_ci_profile_is_pinned():
    assert make_config("ci").key() == CI_KEY


@pytest.mark.parametrize("change", [{"ood": ("mnist",)}, {"ood_limit": 7}, {"test_subset_per_class": 3},
                                    {"norm_subset": 11}, {"data_root": "/elsewhere"}])
def test_evaluation_fields_do_not_change_the_key(change):
    assert make_config("ci", **change).key() == CI_KEY


@pytest.mark.parametrize("change", [{"lr": 0.05}, {"seed": 1}, {"epochs": 3}, {"weight_decay": 1e-3},
                                    {"subset_per_class": 100}, {"model_width": 16}, {"loss": "logitnorm"}])
def test_training_fields_change_the_key(change):
    assert make_config("ci", **change).key() != CI_KEY


# --------------------------------------------------------------------------- logits on any set


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_runs")
    return get_run(make_config("ci", **{**TINY, "epochs": 1}), root=root, progress=False)


def _reference_logits(run, images: torch.Tensor) -> torch.Tensor:
    """Independent path: the saved weights, normalize(), one forward pass (bf16 autocast where the run
    computes in bf16, as lnlab.precision decides; the head is float32 either way)."""
    from lnlab.precision import use_bf16

    model = build_model("fastnet", 10, width=run.config.model_width)
    model.load_state_dict(torch.load(run.directory / "model.pt", weights_only=True))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16(run.config.amp, "cpu")):
        return model.eval()(normalize(images)).float()


@requires_cifar10
def test_asking_for_another_ood_set_reuses_the_run_and_evaluates_the_weights(tiny_run, monkeypatch):
    monkeypatch.setattr(lnlab.train, "train", _no_training)
    again = get_run(tiny_run.config.replace(ood=("mnist", "uniform")), root=tiny_run.directory.parent, progress=False)
    assert again.from_cache and again.key == tiny_run.key and list(again.logits) == ["test", "mnist", "uniform"]
    from lnlab.splits import eval_set

    mnist = eval_set(again.config, "mnist").images
    assert mnist.shape[0] == again.config.ood_limit
    got = again.logits_for("mnist")
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, _reference_logits(again, mnist), atol=1e-4, rtol=1e-4)
    assert any(p.name.startswith("logits-mnist-") for p in (again.directory / "eval").iterdir())


@requires_cifar10
def test_cached_logits_are_read_back_and_a_tampered_file_is_recomputed(tiny_run, monkeypatch):
    first = tiny_run.logits_for("uniform")
    fresh = get_run(tiny_run.config, root=tiny_run.directory.parent, progress=False)  # new Run: no memo
    monkeypatch.setattr(evaluate, "_infer", _no_training)
    assert torch.equal(fresh.logits_for("uniform"), first)
    monkeypatch.undo()
    (path,) = [p for p in (tiny_run.directory / "eval").glob("logits-uniform-*.pt")]
    path.write_bytes(path.read_bytes()[:-8] + b"garbage!")
    again = get_run(tiny_run.config, root=tiny_run.directory.parent, progress=False)
    with pytest.warns(UserWarning, match="checksum"):
        assert torch.equal(again.logits_for("uniform"), first)


@requires_cifar10
def test_a_users_own_ood_set_works_by_name_and_by_path(tiny_run, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    folder = tmp_path / "mine" / "deep" / "er"
    folder.mkdir(parents=True)
    for i in range(5):  # any size: resized like the registered sets
        Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    np.savez(tmp_path / "packed.npz", x=rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8))
    import os

    for pack in ("cifar10.npz",):  # a data root holding CIFAR-10 and the user's sets
        os.symlink(os.path.join(os.environ["LNLAB_DATA"], pack), tmp_path / pack)
    run = get_run(tiny_run.config.replace(data_root=str(tmp_path)), root=tiny_run.directory.parent, progress=False)
    assert run.from_cache
    assert run.logits_for("mine").shape == (5, 10)
    assert run.logits_for("packed").shape == (6, 10)
    assert run.logits_for(str(tmp_path / "mine")).shape == (5, 10)
    with pytest.raises(DatasetNotFoundError, match="not a registered dataset.*nope"):
        run.logits_for("nope")


@requires_cifar10
def test_validation_sets_hold_out_training_images_and_use_the_input_space_noise(tiny_run):
    from lnlab.splits import eval_set, training_subset

    val = eval_set(tiny_run.config, "val")
    train_images = training_subset(tiny_run.config)[0]
    seen = {bytes(x.numpy()) for x in train_images}
    assert not any(bytes(x.numpy()) in seen for x in val.images)  # never an image the run trained on
    assert torch.bincount(val.labels).min() == torch.bincount(val.labels).max()
    noise = normalize(eval_set(tiny_run.config, "gaussian_val").images)
    assert abs(float(noise.std()) - 0.47) < 0.03 and float(noise.abs().max()) < 1.02  # clip(N(0, .5^2), -1, 1)
    test_noise = eval_set(tiny_run.config, "gaussian").images
    assert not torch.equal(test_noise[:10], eval_set(tiny_run.config, "gaussian_val").images[:10])


def test_classifier_head_is_float32_under_bf16_autocast():
    torch.manual_seed(0)
    model = build_model("fastnet", 10, width=8).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
        features = torch.nn.functional.adaptive_avg_pool2d(model.features(x), 1).flatten(1)
    assert out.dtype == torch.float32 and features.dtype == torch.bfloat16
    torch.testing.assert_close(out, model.fc(features.float()))


# --------------------------------------------------------------------------- the OOD table


def test_ood_table_matches_ood_metrics_per_set_and_averages_them():
    runs = {"CE": logits("ce"), "LogitNorm τ=0.04": logits("logitnorm", seed=1)}
    table = evaluate.ood_table(runs, scores=["msp", "energy"])
    assert list(table.index) == [*OODS, "mean"]
    for label, source in runs.items():
        for name in ("msp", "energy"):
            per_set = []
            for ood in OODS:
                m = ood_metrics(score(name, source["test"]), score(name, source[ood]))
                per_set.append(100 * m["auroc"])
                assert table.loc[ood, (label, name, "fpr95", "mean")] == pytest.approx(100 * m["fpr95"])
                assert table.loc[ood, (label, name, "aupr", "mean")] == pytest.approx(100 * m["aupr_in"])
            assert table.loc["mean", (label, name, "auroc", "mean")] == pytest.approx(np.mean(per_set))
    assert table.xs("std", axis=1, level="stat").isna().all().all()  # one seed: no spread


def test_ood_table_gives_mean_and_sample_std_over_seeds():
    seeds = Seeds([fake_run("ce", seed=s) for s in range(3)])
    table = evaluate.ood_table({"CE": seeds}, scores=["msp"])
    values = [100 * ood_metrics(score("msp", r.logits["test"]), score("msp", r.logits["mnist"]))["auroc"] for r in seeds]
    assert table.loc["mnist", ("CE", "msp", "auroc", "mean")] == pytest.approx(np.mean(values))
    assert table.loc["mnist", ("CE", "msp", "auroc", "std")] == pytest.approx(np.std(values, ddof=1))


def test_ood_table_rejects_unknown_scores_and_settings_before_any_work():
    with pytest.raises(ValueError, match="unknown score.*softmax"):
        evaluate.ood_table({"CE": logits("ce")}, scores=["softmax"])
    with pytest.raises(ValueError, match="unknown setting.*temprature.*odin"):
        evaluate.ood_table({"CE": logits("ce")}, scores=["msp"], settings={"odin": {"temprature": 10.0}})
    with pytest.raises(ValueError, match="needs the network"):
        evaluate.ood_table({"CE": logits("ce")}, scores=["odin"])


@pytest.mark.parametrize("name", ["test", "val", "train"])
def test_id_set_names_cannot_be_ood_sets(name):
    with pytest.raises(ValueError, match="cannot be OOD sets"):
        make_config("ci", ood=("mnist", name))


def test_val_needs_held_out_training_images_and_says_so_before_training(monkeypatch):
    monkeypatch.setattr(lnlab.runs, "get_run", lambda *a, **k: pytest.fail("trained although 'val' is impossible"))
    with pytest.raises(ValueError, match="no held-out training images"):
        suite.comparison_runs("paper", validation=True, device="cpu")  # paper trains on all 50,000 images


@requires_cifar10
def test_retraining_a_run_discards_evaluation_results_of_the_old_weights(tmp_path):
    config = make_config("ci", **{**TINY, "epochs": 1})
    run = get_run(config, root=tmp_path, progress=False)
    stale = run.directory / "eval" / "logits-stale-0000.pt"
    stale.write_bytes(b"old weights")
    (run.directory / "model.pt").write_bytes(b"corrupt")
    with pytest.warns(UserWarning, match="recomputing"):
        again = get_run(config, root=tmp_path, progress=False)
    assert not stale.exists() and not again.from_cache
    from lnlab.splits import eval_set

    torch.testing.assert_close(again.logits_for("test"), _reference_logits(again, eval_set(config, "test").images),
                               atol=1e-4, rtol=1e-4)


def test_paper_layout_bolds_the_better_run_per_metric_and_marks_paper_sets(tmp_path):
    runs = {"CE": logits("ce"), "LogitNorm": logits("logitnorm", seed=1)}
    table = evaluate.ood_table(runs, scores=["msp"], oods=["textures", "mnist"])
    layout = tables.paper_layout(table, style="markdown")
    assert list(layout.index.get_level_values(1)) == ["textures †", "mnist", "mean"]
    for ood, row in zip(table.index, layout.itertuples(index=False)):
        fpr = table.loc[ood].xs(("msp", "fpr95", "mean"), level=("score", "metric", "stat"))
        winner = fpr.idxmin()
        cells = dict(zip(layout.columns, row))
        assert cells[("FPR95 ↓", winner)].startswith("**") and not cells[("FPR95 ↓", fpr.idxmax())].startswith("**")
    paths = tables.export_table(table, "t", tmp_path)
    assert [p.suffix for p in paths] == [".csv", ".md", ".tex"]
    tex = (tmp_path / "t.tex").read_text()
    assert "\\toprule" in tex and "\\textbf{" in tex and "\\bottomrule" in tex
    assert "**" in (tmp_path / "t.md").read_text()


def _table(cells: dict) -> "pd.DataFrame":
    """An ood_table-shaped frame: {(ood, run, metric): (mean, std)} for score "msp"."""
    import pandas as pd

    rows = list(dict.fromkeys(ood for ood, _, _ in cells))
    pairs = dict.fromkeys((run, metric) for _, run, metric in cells)
    columns = pd.MultiIndex.from_tuples([(run, "msp", metric, stat) for run, metric in pairs for stat in ("mean", "std")],
                                        names=["run", "score", "metric", "stat"])
    frame = pd.DataFrame(index=rows, columns=columns, dtype=float)
    for (ood, run, metric), (mean, std) in cells.items():
        frame.loc[ood, (run, "msp", metric, "mean")] = mean
        frame.loc[ood, (run, "msp", metric, "std")] = std
    return frame


def test_describe_pair_reads_every_number_from_the_table_and_compares_with_the_larger_std():
    nan = float("nan")
    table = _table({("textures", "CE", "fpr95"): (75.1, 2.8), ("textures", "LN", "fpr95"): (45.3, 1.0),
                    ("gaussian", "CE", "fpr95"): (89.7, 9.7), ("gaussian", "LN", "fpr95"): (99.4, 0.3),
                    ("mnist", "CE", "fpr95"): (30.0, 1.0), ("mnist", "LN", "fpr95"): (40.0, 2.0),
                    ("textures", "CE", "auroc"): (82.8, 1.1), ("textures", "LN", "auroc"): (90.0, 0.6),
                    ("gaussian", "CE", "auroc"): (76.8, 11.0), ("gaussian", "LN", "auroc"): (75.0, 2.8),
                    ("mnist", "CE", "auroc"): (90.0, 0.5), ("mnist", "LN", "auroc"): (89.0, 0.5)})
    text = tables.describe_pair(table)
    assert text.startswith("**MSP, CE → LN** (%, mean ± std over seeds).")
    assert "FPR95 ↓: textures 75.1 ± 2.8 → 45.3 ± 1.0, gaussian 89.7 ± 9.7 → 99.4 ± 0.3" in text
    assert "AUROC ↑: textures 82.8 ± 1.1 → 90.0 ± 0.6" in text
    # 9.7 points worse with a std of 9.7, as printed: within the spread, not worse (RESULTS.md's bold rule)
    assert ("better by more than the larger std of the two on FPR95 ↓ textures and AUROC ↑ textures; "
            "worse on FPR95 ↓ mnist and AUROC ↑ mnist; within the spread on FPR95 ↓ gaussian and AUROC ↑ gaussian.") in text
    one_seed = _table({("textures", "CE", "fpr95"): (75.1, nan), ("textures", "LN", "fpr95"): (45.3, nan)})
    assert tables.describe_pair(one_seed, metrics=("fpr95",)) == "**MSP, CE → LN** (%, one seed each, so no difference is called beyond the spread). FPR95 ↓: textures 75.1 → 45.3."
    with pytest.raises(ValueError, match="compares two runs"):
        tables.describe_pair(_table({("textures", "CE", "fpr95"): (75.1, 1.0)}), metrics=("fpr95",))


# --------------------------------------------------------------------------- pairing and seeds


def test_comparison_runs_pairs_ce_with_the_first_tau_named(monkeypatch):
    asked = []
    monkeypatch.setattr(lnlab.runs, "get_run", lambda config, **kw: asked.append(config) or fake_run(
        config.loss, config.tau, config.seed))
    runs = suite.comparison_runs("ci", taus=[0.1, 0.04], seeds=[0, 1])
    assert list(runs) == ["CE", "LogitNorm τ=0.1", "LogitNorm τ=0.04"]
    assert list(suite.main_pair(runs)) == ["CE", "LogitNorm τ=0.1"]
    assert [c.seed for c in asked] == [0, 1] * 3 and runs["LogitNorm τ=0.1"].seeds == [0, 1]
    assert runs["LogitNorm τ=0.1"].config.tau == 0.1  # a Seeds reads like its first run


@pytest.mark.parametrize("seeds", [[], [0, 0], [-1], [1.5]])
def test_bad_seeds_are_rejected(seeds):
    with pytest.raises(ValueError, match="seeds"):
        suite.check_seeds(seeds)

