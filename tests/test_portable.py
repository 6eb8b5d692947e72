"""Portable runs (no weights): export, verified import, the reference source and profile, the notebooks on them.

One tiny CE + LogitNorm pair is trained once per module on the CPU, exported and imported; every test
reads those folders (tests that damage a run damage a copy).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import nbformat
import numpy as np
import pandas as pd
import pytest
import torch

import lnlab.train
from lnlab.atomic import atomic_write_json, sha256_file
from lnlab.cli import main
from lnlab.evaluate import accuracy_table, ood_table, score_values
from lnlab.portable import PortableRun, export_run, import_runs, load_portable
from lnlab.shipped import reference_root
from lnlab.profiles import make_config
from lnlab.runs import CacheError, get_run, is_cached
from lnlab.store import MANIFEST
from lnlab.suite import comparison_runs, run_suite
from tests_support import TINY, requires_cifar10

pytestmark = requires_cifar10

# TINY (seconds on a CPU) with two OOD sets and 2 epochs; subset_per_class holds images out ("val").
SMALL = {**TINY, "epochs": 2, "ood": ("gaussian", "mnist")}
OODS = ["gaussian", "mnist"]


def _no_training(*args, **kwargs):
    raise AssertionError("a portable run was trained")


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    from lnlab.runs import get_pair

    base = tmp_path_factory.mktemp("portable")
    pair = get_pair("ci", tau=0.04, root=base / "trained", progress=False, **SMALL)
    exported = base / "reference" / "tiny"  # a reference source with one recipe folder
    folders = {loss: export_run(run, exported) for loss, run in pair.items()}
    imported = import_runs([exported], root=base / "imported")
    return SimpleNamespace(pair=pair, exported=exported, reference=base / "reference", folders=folders,
                           cache=base / "imported", trained=base / "trained", imported=imported)


def _imported(shared, monkeypatch) -> dict:
    monkeypatch.setattr(lnlab.train, "train", _no_training)
    return {loss: get_run(run.config, root=shared.cache) for loss, run in shared.pair.items()}


def _copy(folder: Path, to: Path) -> Path:
    return Path(shutil.copytree(folder, to / folder.name))


# --------------------------------------------------------------------------- export, import, round trip


def test_export_writes_a_compact_run_with_provenance(shared):
    ce = shared.pair["ce"]
    folder = shared.folders["ce"]
    assert sorted(p.name for p in folder.iterdir()) == ["logits.npz", "manifest.json", "run.json"]
    meta = json.loads((folder / "run.json").read_text())
    assert meta["key"] == ce.key and meta["canonical"] == ce.config.canonical()
    sets = {entry["name"]: entry for entry in meta["sets"]}
    assert list(sets) == ["test", *OODS, "train", "val", "gaussian_val", "val_pixels", "val_jigsaw", "val_blend"]
    assert meta["config"]["ood"] == OODS and meta["config"]["data_root"] is None
    assert meta["history"] == ce.history and meta["final_train_loss"] == ce.final_train_loss
    provenance = meta["provenance"]
    assert provenance["device"] == "cpu" and provenance["engine_version"] >= 2
    assert provenance["wall_seconds"] == pytest.approx(sum(row["seconds"] for row in ce.history))
    with np.load(folder / "logits.npz", allow_pickle=False) as npz:
        assert npz[sets["test"]["logits"]].dtype == np.float16 and npz[sets["mnist"]["logits"]].shape == (64, 10)
        assert npz[sets["test"]["labels"]].dtype == np.int16 and sets["mnist"]["labels"] is None
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["files"] == {n: sha256_file(folder / n) for n in ("run.json", "logits.npz")}
    assert sorted(shared.imported) == sorted(run.key for run in shared.pair.values())


def test_imported_runs_give_the_same_tables_without_weights_or_images(shared, monkeypatch):
    import lnlab.splits

    sets = ["test", *OODS, "train", "val", "gaussian_val"]
    original = {"CE": shared.pair["ce"], "LN": shared.pair["logitnorm"]}
    expected = ood_table(original, scores=["msp", "energy"], oods=OODS)
    accuracy = accuracy_table(original).to_numpy(dtype=float)
    first = {label: {"logits": {n: run.logits_for(n) for n in sets}, "labels": run.labels,
                     "val": run.labels_for("val"), "test_acc": run.test_acc} for label, run in original.items()}

    imported = _imported(shared, monkeypatch)
    monkeypatch.setattr(lnlab.splits, "_load", lambda *a, **k: pytest.fail("read a dataset"))
    portable = {"CE": imported["ce"], "LN": imported["logitnorm"]}
    assert all(isinstance(run, PortableRun) and run.from_cache and not run.has_weights for run in portable.values())
    assert original["CE"].has_weights

    table = ood_table(portable, scores=["msp", "energy"], oods=OODS)
    assert np.nanstd(expected.xs("mean", axis=1, level="stat").to_numpy()) > 1  # a real table, not a constant
    # float16 rounding of the logits: at most one image of the 64-image sets changes side (1.6 points of FPR95)
    np.testing.assert_allclose(table.to_numpy(), expected.to_numpy(), atol=1.6)
    rounded = {label: {n: old["logits"][n].half().float() for n in ["test", *OODS]} for label, old in first.items()}
    np.testing.assert_array_equal(table.to_numpy(), ood_table(rounded, scores=["msp", "energy"], oods=OODS).to_numpy())
    np.testing.assert_allclose(accuracy_table(portable).to_numpy(dtype=float), accuracy, atol=100 / 80)
    for label, run in portable.items():
        source, old = original[label], first[label]
        assert run.key == source.key and run.history == source.history and run.classes == source.classes
        pd.testing.assert_frame_equal(run.history_frame(), source.history_frame(), check_like=True)
        assert run.final_train_loss == source.final_train_loss
        assert run.test_acc == pytest.approx(old["test_acc"], abs=1 / 80)
        assert torch.equal(run.labels, old["labels"]) and torch.equal(run.labels_for("val"), old["val"])
        for name in sets:
            assert run.logits_for(name).dtype == torch.float32
            torch.testing.assert_close(run.logits_for(name), old["logits"][name], rtol=1e-3, atol=1e-2)
        assert set(run.logits) == {"test", *OODS}


def test_a_portable_run_refuses_what_needs_weights_or_other_images(shared, monkeypatch):
    run = _imported(shared, monkeypatch)["logitnorm"]
    with pytest.raises(ValueError, match=r"stores the sets \['test', 'gaussian', .*cannot compute new sets"):
        run.logits_for("textures")
    with pytest.raises(ValueError, match="no weights"):
        run.model()
    with pytest.raises(ValueError, match="'odin' needs the network.*no weights and no stored odin scores"):
        score_values(run, "odin", "test")
    with pytest.raises(ValueError, match="no labels"):
        run.labels_for("gaussian")
    other = get_run(run.config.replace(test_subset_per_class=5), root=shared.cache)
    with pytest.raises(ValueError, match="test_subset_per_class=8.*cannot compute new sets"):
        other.logits_for("test")


def test_scores_without_weights_give_the_full_table_of_the_stored_sets(shared, tmp_path, monkeypatch):
    from lnlab.evaluate import scores_for

    trained = shared.pair["logitnorm"]
    folder = export_run(trained, tmp_path / "light", weights=False, scores=True)  # the size budget's export
    assert not (folder / "weights.npz").exists()
    light = load_portable(folder)
    assert not light.has_weights
    for name in ("test", *OODS):  # the scores computed from the weights at export, read without them
        assert torch.allclose(score_values(light, "odin", name), score_values(trained, "odin", name), atol=1e-5)
    assert scores_for({"light": light}, ["msp", "odin", "gradnorm"], sets=OODS) == (["msp", "odin", "gradnorm"], [])
    assert scores_for({"light": light}, ["odin"], sets=["textures"]) == ([], ["odin"])  # not stored for that set
    assert scores_for({"light": light}, ["odin"]) == ([], ["odin"])  # the sets are not known: as before
    with pytest.raises(ValueError, match="no weights and no stored odin scores of 'val'"):
        score_values(light, "odin", "val")
    # exported again without a set (the size cuts of the reference source): the other sets' scores pass on
    again = load_portable(export_run(light, tmp_path / "again", sets=["test", *OODS[:1]], weights=False, scores=True))
    assert list(again.stored) == ["test", OODS[0]] and not again.has_weights
    for name in ("test", OODS[0]):
        assert torch.equal(score_values(again, "gradnorm", name), score_values(light, "gradnorm", name))
        assert torch.equal(again.logits_for(name), light.logits_for(name))
    with pytest.raises(ValueError, match="no weights and no stored odin scores"):
        score_values(again, "odin", OODS[1])


def test_a_portable_entry_is_never_trained_or_overwritten(shared, monkeypatch, tmp_path):
    monkeypatch.setattr(lnlab.train, "train", _no_training)
    ce = shared.pair["ce"]
    run = get_run(ce.config, root=shared.cache)  # train=True: still loaded as it is
    assert isinstance(run, PortableRun) and is_cached(ce.config, shared.cache)
    assert not list(shared.cache.rglob("model.pt")) and not list(shared.cache.rglob("checkpoint.pt"))
    before = {p: p.stat().st_mtime_ns for p in shared.cache.rglob("*")}
    assert import_runs([shared.exported], root=shared.cache) == []  # the same runs again: a no-op
    assert {p: p.stat().st_mtime_ns for p in shared.cache.rglob("*")} == before
    with pytest.raises(ValueError, match="with its weights"):
        import_runs([shared.folders["ce"]], root=shared.trained)
    monkeypatch.setenv("LNLAB_REFERENCE", str(tmp_path / "empty"))
    other = ce.config.replace(seed=5)
    assert not is_cached(other, shared.cache)
    with pytest.raises(CacheError, match="not in the run cache .* or the reference source"):
        get_run(other, root=shared.cache, train=False)
    assert not (shared.cache / other.key()).exists()


@pytest.mark.parametrize("name", ["logits.npz", "run.json"])
def test_a_tampered_export_is_refused(shared, tmp_path, name):
    folder = _copy(shared.folders["logitnorm"], tmp_path)
    data = bytearray((folder / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / name).write_bytes(bytes(data))
    with pytest.raises(CacheError, match=rf"{name} does not match its checksum .*re-export") as error:
        load_portable(folder)
    assert "\n" not in str(error.value)
    with pytest.raises(CacheError, match=name):
        import_runs([folder], root=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()
    (folder / name).unlink()
    with pytest.raises(CacheError, match=rf"{name} is missing.*re-export"):
        load_portable(folder)


@pytest.mark.parametrize("key", ["../elsewhere", "", "0123456789abcdef"])
def test_an_export_whose_key_is_not_its_configs_is_refused_even_with_a_matching_manifest(shared, tmp_path, key):
    folder = _copy(shared.folders["ce"], tmp_path)
    meta = json.loads((folder / "run.json").read_text())
    meta["key"] = key
    atomic_write_json(folder / "run.json", meta)
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"]["run.json"] = sha256_file(folder / "run.json")  # a forged, self-consistent export
    atomic_write_json(folder / MANIFEST, manifest)
    with pytest.raises(CacheError, match="is not the key of its config"):
        import_runs([folder], root=tmp_path / "cache")
    assert not (tmp_path / "cache").exists() and not (tmp_path / "elsewhere").exists()


def test_export_refuses_an_unfinished_run(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"half")
    with pytest.raises(ValueError, match="not a finished, verified run") as error:
        export_run(tmp_path / "run", tmp_path / "out")
    assert "\n" not in str(error.value)


# --------------------------------------------------------------------------- the reference source and profile


def test_reference_profile_reads_the_recipe_and_never_trains(shared, monkeypatch, tmp_path):
    monkeypatch.setattr(lnlab.train, "train", _no_training)
    monkeypatch.setenv("LNLAB_REFERENCE", str(shared.reference))
    assert reference_root() == shared.reference.resolve()
    for loss, run in shared.pair.items():
        assert make_config("reference", loss=loss, tau=0.04, seed=0).key() == run.key
    runs = comparison_runs("reference", taus=[0.04], device="cuda", runs_root=tmp_path / "empty-cache")
    assert list(runs) == ["CE", "LogitNorm τ=0.04"]
    assert all(isinstance(group[0], PortableRun) for group in runs.values())
    assert not (tmp_path / "empty-cache").exists()
    with pytest.raises(ValueError, match=r"no LogitNorm τ=0.1 seed 0; they hold CE seeds \[0\]; LogitNorm τ=0.04 seeds \[0\]"):
        comparison_runs("reference", taus=[0.1], runs_root=tmp_path / "empty-cache")
    with pytest.raises(ValueError, match=r"no CE seed 3.*seeds \[0\]"):
        comparison_runs("reference", seeds=[3], runs_root=tmp_path / "empty-cache")


def test_reference_profile_errors_when_empty_or_mixed(shared, monkeypatch, tmp_path):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("LNLAB_REFERENCE", str(tmp_path / "empty"))
    with pytest.raises(ValueError, match=r"no reference runs here.*ci\|quick\|laptop\|paper"):
        make_config("reference")
    mixed = tmp_path / "mixed" / "recipe"
    _copy(shared.folders["ce"], mixed)
    forged = _copy(shared.folders["logitnorm"], mixed)
    meta = json.loads((forged / "run.json").read_text())
    meta["config"]["epochs"] = meta["canonical"]["epochs"] = 7
    atomic_write_json(forged / "run.json", meta)
    monkeypatch.setenv("LNLAB_REFERENCE", str(mixed.parent))
    with pytest.raises(ValueError, match=r"2 recipes \(they differ in \['epochs'\]\)"):
        make_config("reference")


# --------------------------------------------------------------------------- command line


def test_cli_export_and_import(shared, tmp_path, capsys):
    ce = shared.pair["ce"]
    assert main(["export", ce.key, str(shared.pair["logitnorm"].directory), "--runs", str(shared.trained),
                 "--to", str(tmp_path / "out"), "--sets", "test", "gaussian"]) == 0
    out = capsys.readouterr().out
    assert out.count("KiB") == 2 and str(tmp_path / "out" / ce.key) in out
    stored = json.loads((tmp_path / "out" / ce.key / "run.json").read_text())["sets"]
    assert [entry["name"] for entry in stored] == ["test", "gaussian"]
    assert main(["import", str(tmp_path / "out"), "--runs", str(tmp_path / "cache")]) == 0
    assert "2 run(s) imported" in capsys.readouterr().out
    assert main(["import", str(tmp_path / "out" / ce.key), "--runs", str(tmp_path / "cache")]) == 0
    assert "already in" in capsys.readouterr().out
    for argv, message in [(["export", "nosuchkey", "--runs", str(shared.trained), "--to", str(tmp_path)], "nosuchkey"),
                          (["export", ce.key, "--runs", str(shared.trained), "--to", str(tmp_path / "x"),
                            "--sets", "gaussian"], "must include 'test'"),
                          (["import", str(tmp_path / "nothing")], "no folder"),
                          (["import", str(shared.trained)], "holds no exported run")]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1


def test_cli_eval_reference(shared, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(lnlab.train, "train", _no_training)
    monkeypatch.setenv("LNLAB_REFERENCE", str(shared.reference))
    argv = ["eval", "--profile", "reference", "--loss", "logitnorm", "--tau", "0.04", "--runs", str(tmp_path)]
    assert main(argv + ["--scores", "msp", "energy"]) == 0
    out = capsys.readouterr().out
    assert "LogitNorm τ=0.04" in out and "mnist" in out and "Energy" in out
    assert main(argv + ["--scores", "odin"]) == 2
    assert "needs the network" in capsys.readouterr().err
    monkeypatch.setenv("LNLAB_REFERENCE", str(tmp_path / "none"))
    for command in (argv, ["figures", "--profile", "reference", "--output", str(tmp_path / "figures")]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "no reference runs here" in err and err.count("\n") == 1


# --------------------------------------------------------------------------- notebooks


def test_notebooks_run_on_imported_runs_without_weights_or_images(shared, tmp_path, monkeypatch):
    monkeypatch.setenv("LNLAB_REFERENCE", str(shared.reference))
    monkeypatch.setenv("LNLAB_DATA", str(tmp_path / "no-data"))  # portable runs need no image
    out = tmp_path / "figures"
    written = run_suite(profile="reference", notebooks=["01", "02", "03", "04", "05", "06"], runs_root=shared.cache,
                        output=out, device="cuda", extra_parameters={"taus": [0.04], "seeds": [0]})
    names = {p.name for p in written}
    assert {"01_logit_norm_growth_norm_vs_epoch.png", "02_msp_histograms_msp_mnist.png",
            "03_lower_bound_bound_vs_tau.png", "04_tau_study_metrics_vs_tau.png",
            "06_calibration_reliability.png"} <= names
    assert (out / "05_ood_table_table.csv").is_file()
    table = (out / "05_ood_table_table.csv").read_text()
    assert "msp" in table and "energy" in table and "odin" not in table
    outputs = "".join(o.get("text", "") for c in nbformat.read(out / "05_ood_table.ipynb", as_version=4).cells
                      for o in c.get("outputs", []))
    assert "Skipping odin, gradnorm" in outputs
    for folder in (shared.cache, shared.exported, out):
        assert not list(folder.rglob("model.pt")) and not list(folder.rglob("checkpoint.pt"))
