"""The shipped reference runs (``lnlab/reference/<recipe>/``): recipe, provenance, checksums, size, and use.

Every run a recipe folder ships must verify against its manifest, be a run of that recipe (its key is
the key of the recipe's profile with its loss, τ and seed), say where and how it was trained, and
carry its weights so that weight-based scores and new sets work. The whole source stays small.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import lnlab.train
from lnlab.portable import WEIGHTS_FILE, load_portable
from lnlab.shipped import reference_recipes, reference_runs
from lnlab.profiles import make_config
from lnlab.runs import get_run
from lnlab.splits import VALIDATION_OOD_SETS, tracked_ood
from lnlab.train import snapshot_epochs

SOURCE = Path(lnlab.train.__file__).resolve().parent / "reference"
MAX_MB = 100  # decimal MB, as the issue (#23) and lnlab/reference/README.md count: float16, snapshots only where read
# Recipe folder -> the profile whose runs it holds, the machine kind it was made on, and the training set.
RECIPES = {"laptop": ("laptop", "cpu", "cifar10"), "laptop-tinyimagenet100": ("laptop", "cpu", "tinyimagenet100")}


def _shipped() -> list[Path]:
    return sorted(p for recipe in SOURCE.iterdir() if recipe.is_dir() for p in recipe.iterdir() if p.is_dir())


def test_every_recipe_folder_is_known_and_the_source_stays_small():
    assert set(p.name for p in SOURCE.iterdir() if p.is_dir()) <= set(RECIPES)
    size = sum(f.stat().st_size for f in SOURCE.rglob("*") if f.is_file())
    assert size <= MAX_MB * 10 ** 6, (f"the reference source is {size / 10 ** 6:.1f} MB (limit {MAX_MB} MB): apply the "
                                      "next cut written in lnlab/reference/README.md")


@pytest.mark.parametrize("folder", _shipped(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_shipped_run_has_its_recipe_provenance_and_checksums(folder, monkeypatch):
    monkeypatch.delenv("LNLAB_REFERENCE", raising=False)
    run = load_portable(folder)  # verifies every file against manifest.json
    profile, device, dataset = RECIPES[folder.parent.name]
    config = run.trained
    expected = make_config(profile, dataset=dataset, loss=config.loss, tau=config.tau, penalty=config.penalty,
                           smoothing=config.smoothing, seed=config.seed)
    assert run.key == folder.name == expected.key(), f"{folder.name} is not a run of the {profile} recipe"
    assert config.canonical() == expected.canonical()
    provenance = run.meta["provenance"]
    assert provenance["device"] == device and provenance["device_name"]
    assert provenance["precision"] in ("bf16-autocast", "float32") and provenance["torch_version"]
    assert provenance["engine_version"] == expected.canonical()["engine_version"]
    assert len(run.history) == expected.epochs and provenance["wall_seconds"] > 0
    assert {"train", "test", *tracked_ood(dataset), "val", *VALIDATION_OOD_SETS} <= set(run.history_sets)
    assert run.snapshot_epochs in (snapshot_epochs(expected.epochs), [expected.epochs])  # all, or the final logits
    assert {"test", "val", *VALIDATION_OOD_SETS, *expected.ood} <= set(run.sets)
    if run.has_weights:
        assert WEIGHTS_FILE in json.loads((folder / "manifest.json").read_text())["files"]
    else:  # shipped without weights (the size budget): its weight-based scores are stored for every stored set
        for score in ("odin", "gradnorm"):
            assert set(run.meta["scores"][score]["sets"]) == {n for n in run.sets if n not in ("train", "val")}


@pytest.mark.parametrize("folder", _shipped()[:1], ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_weights_reproduce_the_shipped_logits(folder, monkeypatch, tmp_path):
    """The float16 weights give the stored test logits back (float16 storage + float16 weights + bf16)."""
    monkeypatch.delenv("LNLAB_REFERENCE", raising=False)
    run = load_portable(folder)
    stored = run.logits_for("test")
    net = run.model()
    from lnlab.evaluate import eval_loader, predict
    from lnlab.precision import use_bf16
    from lnlab.splits import eval_set

    images = eval_set(run.config, "test").images[:500]
    fresh = predict(net, eval_loader(images, torch.device("cpu"), run.config.channels_last),
                    use_bf16(run.config.amp, "cpu"))
    agree = (fresh.argmax(1) == stored[:500].argmax(1)).float().mean()
    assert agree >= 0.98, f"only {agree:.1%} of the predictions agree"


def test_profiles_find_the_shipped_runs_without_training(monkeypatch, tmp_path):
    monkeypatch.delenv("LNLAB_REFERENCE", raising=False)
    if not reference_recipes():
        pytest.skip("no reference runs shipped")

    def no_training(*args, **kwargs):
        raise AssertionError("a shipped run was trained")

    monkeypatch.setattr(lnlab.train, "train", no_training)
    loss, tau, seed = reference_runs("laptop")[0]
    for profile in ("laptop", "reference"):
        run = get_run(make_config(profile, loss=loss, seed=seed, **({} if tau is None else {"tau": tau})),
                      root=tmp_path / "cache")
        assert run.has_weights and len(run.history) == make_config("laptop").epochs
    assert not list((tmp_path / "cache").rglob("*.pt"))  # nothing computed yet, nothing written into the source
