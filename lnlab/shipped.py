"""The reference source: runs trained once by the project and shipped read-only inside the package.

``reference_root()`` is ``lnlab/reference/`` (or ``$LNLAB_REFERENCE``), one folder per recipe
(``laptop/``: CPU-trained, benchmarks/RESULTS.md; a GPU-trained ``paper``-scale recipe can sit beside
it), each holding portable runs (:mod:`lnlab.portable`) of one recipe that differ only in loss, τ
and seed. ``reference_config(recipe=…)`` is the ``reference`` profile (:mod:`lnlab.profiles`);
:func:`find_portable` is where :func:`lnlab.runs.get_run` looks before it trains anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence

from lnlab.config import ENGINE_VERSION, TrainConfig
from lnlab.portable import RUN_FILE, is_portable
from lnlab.store import MANIFEST, CacheError

__all__ = ["reference_root", "reference_config", "reference_recipes", "reference_runs", "shipped_run",
           "reference_seeds", "reference_taus", "find_portable", "recipe_for", "DEFAULT_RECIPE"]

DEFAULT_RECIPE = "laptop"  # the recipe the ``reference`` profile reads when the source holds several
VARYING = ("loss", "tau", "penalty", "smoothing", "seed")  # what may differ between the runs of one reference recipe
_NO_REFERENCE = ("no reference runs here: import runs with `lnlab import`, set $LNLAB_REFERENCE, "
                 "or pick a trainable profile (ci|quick|laptop|paper)")


def reference_root() -> Path:
    """The reference runs: ``$LNLAB_REFERENCE`` if set, else ``lnlab/reference/`` (inside the package);
    one sub-folder per recipe (``laptop/``, …)."""
    from_env = os.environ.get("LNLAB_REFERENCE")
    return Path(from_env).expanduser().resolve() if from_env else Path(__file__).resolve().parent / "reference"


def reference_recipes() -> list[str]:
    """The recipe folders of the reference source that hold at least one run (sorted)."""
    base = reference_root()
    return sorted(p.name for p in base.iterdir() if p.is_dir() and any(is_portable(r) for r in p.iterdir())) \
        if base.is_dir() else []


def recipe_for(dataset: str | None) -> str | None:
    """The reference recipe folder whose runs were trained on ``dataset`` (None: the default recipe); the
    default recipe when it has that dataset, else the first folder that has, else None."""
    if dataset is None:
        return None
    from lnlab.data import is_registered

    dataset = str(dataset).lower() if is_registered(str(dataset)) else str(dataset)
    folders = [DEFAULT_RECIPE, *(r for r in reference_recipes() if r != DEFAULT_RECIPE)]
    for recipe in folders:
        if recipe in reference_recipes():
            entries = _reference_entries(recipe)
            if entries and entries[0]["config"]["dataset"] == dataset:
                return recipe
    raise ValueError(f"the reference source {reference_root()} has no runs trained on {dataset!r}; its recipes: "
                     f"{ {r: _reference_entries(r)[0]['config']['dataset'] for r in reference_recipes()} }")


def _recipe_folder(recipe: str | None) -> Path:
    """The folder of ``recipe`` (None: ``DEFAULT_RECIPE`` if shipped, else the only recipe there)."""
    recipes = reference_recipes()
    if recipe is None:
        recipe = DEFAULT_RECIPE if DEFAULT_RECIPE in recipes or len(recipes) != 1 else recipes[0]
    elif recipe not in recipes:
        raise ValueError(f"the reference source {reference_root()} has no recipe {recipe!r}; it has {recipes}")
    return reference_root() / recipe


def find_portable(directory: Path, reference: bool = True) -> Path | None:
    """The portable run a cache folder stands for: itself if portable; else, with ``reference`` and
    unless the cache holds a run with weights there, the reference source's entry of the same key
    (in any recipe folder)."""
    if is_portable(directory):
        return directory
    if not reference or (directory / MANIFEST).exists():
        return None
    return shipped_run(directory.name)


def shipped_run(key: str) -> Path | None:
    """The reference source's folder of run ``key`` (in any recipe folder), or None."""
    for recipe in reference_recipes():
        candidate = reference_root() / recipe / key
        if is_portable(candidate):
            return candidate
    return None


def _reference_entries(recipe: str | None = None) -> list[dict]:
    """``run.json`` of every exported run of one recipe (read, not verified: loading verifies)."""
    base = _recipe_folder(recipe)
    entries = []
    for folder in sorted(base.iterdir()) if base.is_dir() else []:
        if is_portable(folder) and (folder / MANIFEST).is_file():
            try:
                entries.append(json.loads((folder / RUN_FILE).read_text()))
            except (OSError, ValueError) as exc:
                raise CacheError(f"{folder / RUN_FILE} is unreadable ({type(exc).__name__}); "
                                 "re-export the run") from None
    return entries


def reference_config(recipe: str | None = None, **overrides: Any) -> TrainConfig:
    """The ``reference`` profile: the recipe all runs of one reference recipe folder share (every field
    but loss, τ and seed; ``ood``: the OOD sets every run stores) with ``overrides`` applied. Without
    ``recipe``, a ``dataset`` override picks the folder of the runs trained on it (:func:`recipe_for`)."""
    if recipe is None and "dataset" in overrides:
        recipe = recipe_for(overrides["dataset"])
    entries = _reference_entries(recipe)
    if not entries:
        raise ValueError(f"{_NO_REFERENCE} (reference source: {reference_root()})")
    recipes = {json.dumps(_recipe(e), sort_keys=True) for e in entries}
    if len(recipes) > 1:
        differ = sorted({k for r in map(json.loads, recipes) for k, v in r.items()
                         if any(json.loads(o).get(k) != v for o in recipes)})
        raise ValueError(f"the reference recipe folder {_recipe_folder(recipe)} holds runs of {len(recipes)} recipes "
                         f"(they differ in {differ}); keep one recipe per folder")
    engines = {e["canonical"].get("engine_version") for e in entries}
    if engines != {ENGINE_VERSION}:
        raise ValueError(f"the reference runs were made with engine version(s) {sorted(engines)}, this lnlab is "
                         f"{ENGINE_VERSION}: re-export them with a matching lnlab")
    values = {k: v for k, v in entries[0]["config"].items() if k not in VARYING}
    values["ood"] = [n for n in values["ood"] if all(n in e["config"]["ood"] for e in entries)]
    try:
        return TrainConfig(**{**values, **overrides})
    except TypeError as exc:  # an unknown keyword
        raise ValueError(f"{exc}; valid fields: {list(TrainConfig.__dataclass_fields__)}") from None


def _recipe(entry: dict) -> dict:
    """What one reference recipe fixes: the training fields (canonical) and the stored sets' images."""
    canonical = {k: v for k, v in entry["canonical"].items() if k not in VARYING}
    config = entry["config"]
    return {**canonical, **{k: config[k] for k in ("ood_limit", "norm_subset", "test_subset_per_class")}}


def reference_runs(recipe: str | None = None) -> list[tuple[str, float | None, int]]:
    """``(loss, its hyperparameter or None, seed)`` of every run of a reference recipe, sorted: τ for
    LogitNorm, λ for the logit penalty, α for label smoothing (``lnlab.losses.TRAINING_LOSSES``)."""
    from lnlab.losses import TRAINING_LOSSES

    def parameter(config: dict) -> float | None:
        name = TRAINING_LOSSES[config["loss"]][1]
        return None if name is None else float(config[name])

    return sorted({(e["config"]["loss"], parameter(e["config"]), int(e["config"]["seed"]))
                   for e in _reference_entries(recipe)}, key=lambda r: (r[0], r[1] or 0, r[2]))


def reference_seeds(recipe: str | None = None, taus: Sequence[float] = ()) -> list[int]:
    """The seeds for which a reference recipe has the CE run and a LogitNorm run at every τ of ``taus``."""
    have = set(reference_runs(recipe))
    seeds = sorted({seed for *_, seed in have})
    return [s for s in seeds if ("ce", None, s) in have and all(("logitnorm", float(t), s) in have for t in taus)]


def reference_taus(recipe: str | None = None) -> list[float]:
    """The LogitNorm τ values of a reference recipe (sorted)."""
    return sorted({tau for loss, tau, _ in reference_runs(recipe) if loss == "logitnorm"})
