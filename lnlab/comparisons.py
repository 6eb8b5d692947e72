"""The runs a notebook compares: CE and LogitNorm at each τ, other losses, each over seeds, on one training set.

``comparison_runs`` trains or loads (run cache, shipped reference runs) one group of runs per configuration —
``{"CE": Seeds, "LogitNorm τ=0.04": Seeds, …, "Logit penalty λ=0.001": Seeds, …}`` — that every figure, table and
explorer takes. Groups differ only in the loss and its hyperparameter; ``dataset`` picks the training set (for
the ``reference`` profile, the recipe folder of the runs trained on it, :func:`lnlab.shipped.recipe_for`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lnlab.profiles import REFERENCE, default_seeds

if TYPE_CHECKING:
    import pandas as pd

LossSpec = dict  # {"loss": name, <its hyperparameter field>: value}, e.g. {"loss": "logit_penalty", "penalty": 1e-3}


def comparison_runs(profile: str = "quick", taus: Sequence[float] = (0.04,), device: str = "auto",
                    data_root: str | os.PathLike | None = None, runs_root: str | os.PathLike | None = None,
                    oods: Sequence[str] | None = None, progress: bool = True,
                    seeds: Sequence[int] | None = (0,), validation: bool = False, live: bool = False,
                    train: bool = True, dataset: str | None = None, losses: Sequence[LossSpec | str] = (),
                    each_seeds: bool = False, strict: bool = False) -> dict[str, Any]:
    """Train or load (run cache) CE, one LogitNorm run per τ and one run per entry of ``losses``, each for
    every seed.

    Returns ``{"CE": Seeds, "LogitNorm τ=<taus[0]>": Seeds, …}`` in that order: CE first, then the
    τ values *in the order given*, then ``losses`` (each a loss name or ``{"loss": name, field: value}``,
    e.g. ``{"loss": "logit_penalty", "penalty": 1e-3}``, ``"elogitnorm"``), so the first two entries
    (:func:`main_pair`) compare CE with the τ the user named first. A ``Seeds`` is the list of one
    config's runs over ``seeds`` and reads like its first run. ``dataset`` trains on another training set
    (``lnlab.data.training_set_path``; default: the profile's). ``device`` ``"auto"`` or None keeps the
    profile's device (``ci`` pins the CPU); ``oods`` overrides the profile's OOD sets (an evaluation
    choice: cached runs are reused). ``validation`` checks, before any training, that the runs keep
    training images out for ``"val"``. Every notebook asks for the same configs, so within a suite each run
    is trained once. Profile ``"reference"`` loads the shipped runs (:mod:`lnlab.shipped`) and never trains:
    ``device`` is ignored, and runs the reference source lacks are a ValueError listing what it has.
    ``seeds=None``: every seed the reference source has for CE and every τ (the shipped runs of a recipe),
    else seed 0; with ``each_seeds`` every seed it has for each group alone (a τ study whose τ values have
    different seeds; a group the source lacks is then left out, or, with ``strict``, a ValueError listing what it
    has). ``train=False`` never trains: runs neither cached nor shipped are left out (one line
    says which), and a label none of whose seeds exist is dropped.
    ``live`` shows, before the first run trains, a figure of every run's mean logit norm per epoch and its
    test accuracy (:class:`lnlab.live.LiveNormView`), updated in place after each epoch; cached runs appear at once.
    """
    from lnlab.profiles import make_config
    from lnlab.runs import Seeds, get_run, is_cached

    reference = profile == REFERENCE
    overrides: dict[str, Any] = {} if device in (None, "auto") or reference else {"device": device}
    if data_root is not None:
        overrides["data_root"] = str(data_root)
    if oods is not None:
        overrides["ood"] = tuple(oods)
    if dataset is not None:
        overrides["dataset"] = str(dataset)
    kinds = ([{"loss": "ce"}] + [{"loss": "logitnorm", "tau": float(tau)} for tau in dict.fromkeys(taus)]
             + [{"loss": spec} if isinstance(spec, str) else dict(spec) for spec in losses])
    if seeds is None and reference and each_seeds:
        groups = [[make_config(profile, **kind, seed=seed, **overrides) for seed in _shipped_seeds(kind, overrides)]
                  for kind in kinds]
        if strict and not all(groups):
            _missing(kinds, overrides, [make_config(profile, **kind, **overrides)
                                        for kind, configs in zip(kinds, groups) if not configs])
        groups = [configs for configs in groups if configs] or _missing(kinds, overrides)
    else:
        seeds = check_seeds(default_seeds(profile, taus, **overrides) if seeds is None else seeds)
        groups = [[make_config(profile, **kind, seed=seed, **overrides) for seed in seeds] for kind in kinds]
    if validation:
        from lnlab.splits import check_held_out

        check_held_out(groups[0][0])
    if not train:
        found = [[c for c in configs if is_cached(c, runs_root) or _shipped(c)] for configs in groups]
        missing = [f"{c.label()} seed {c.seed}" for configs, kept in zip(groups, found) for c in configs if c not in kept]
        if missing:
            print(f"not trained here (train=False), left out: {', '.join(missing)}")
        groups = [kept for kept in found if kept]
        if not groups:
            return {}
    elif reference:
        absent = [c for configs in groups for c in configs if not _shipped(c) and not is_cached(c, runs_root)]
        if absent:
            _missing(kinds, overrides, absent)
    if live:
        from lnlab.live import LiveNormView

        first = groups[0][0]
        view = LiveNormView([g[0].label() for g in groups], ood=next(iter(first.ood), None), epochs=first.epochs)
        load = view.show().get_run  # get_run, with the view following each run
    else:
        load = get_run
    return {configs[0].label(): Seeds(load(c, root=runs_root, progress=progress, train=train and not reference)
                                      for c in configs) for configs in groups}


def _shipped_seeds(kind: LossSpec, overrides: dict[str, Any]) -> list[int]:
    """The seeds the reference recipe (of ``overrides``' dataset) has for one loss and hyperparameter."""
    from lnlab.losses import TRAINING_LOSSES
    from lnlab.shipped import recipe_for, reference_runs

    field = TRAINING_LOSSES[kind["loss"]][1]
    value = None if field is None else float(kind.get(field, 0.04 if field == "tau" else float("nan")))
    have = reference_runs(recipe_for(overrides.get("dataset")))
    return sorted(seed for loss, param, seed in have if loss == kind["loss"] and param == value)


def _missing(kinds: list[LossSpec], overrides: dict[str, Any], absent: Sequence[Any] = ()) -> list:
    """ValueError naming the runs the reference source lacks and listing the ones it has."""
    from lnlab.shipped import recipe_for, reference_root, reference_runs

    from lnlab.losses import TRAINING_LOSSES, training_loss

    have = reference_runs(recipe_for(overrides.get("dataset")))
    names = ", ".join(f"{c.label()} seed {c.seed}" for c in absent) or ", ".join(str(k) for k in kinds)
    seeds: dict[str, list[int]] = {}
    for loss, param, seed in have:
        field = TRAINING_LOSSES[loss][1]
        seeds.setdefault(training_loss(loss, **({} if field is None else {field: param})).label(), []).append(seed)
    there = "; ".join(f"{label} seeds {sorted(found)}" for label, found in seeds.items())
    raise ValueError(f"the reference runs ({reference_root()}) have no {names}; they hold {there}: pass taus, "
                     "losses and seeds among those")


def _shipped(config: Any) -> bool:
    """Whether the reference source holds the run of ``config``."""
    from lnlab.shipped import shipped_run

    return shipped_run(config.key()) is not None


def check_seeds(seeds: Sequence[int] | int) -> list[int]:
    """Seeds as a list of distinct non-negative ints (ValueError saying what to pass otherwise)."""
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds) \
            or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct non-negative integers, e.g. [0, 1, 2]; got {seeds}")
    return seeds


def main_pair(runs: dict[str, Any]) -> dict[str, Any]:
    """CE and the LogitNorm run at the first τ of :func:`comparison_runs` (the notebooks' main comparison)."""
    if len(runs) < 2:
        raise ValueError("main_pair needs the CE run and at least one LogitNorm run (pass taus=[...])")
    return dict(list(runs.items())[:2])


def bound_points(runs: Any) -> "pd.DataFrame":
    """Final train loss of each LogitNorm run with its τ and class count, for :func:`lnlab.bound_plots.plot_lower_bound`.

    ``runs``: the runs to draw (``{label: Run or Seeds}`` as from :func:`comparison_runs`, or a
    list); every seed is a point. The class count is read from the run's test logits. Columns: tau,
    num_classes, loss, label, lower_bound (Prop. 3), tight_lower_bound.
    """
    import pandas as pd

    from lnlab.evaluate import logits_of, runs_of
    from lnlab.losses import lower_bound, tight_lower_bound

    runs = [run for group in (runs.values() if isinstance(runs, dict) else runs) for run in runs_of(group)]
    rows = []
    for run in runs:
        if str(run.config.loss).lower() != "logitnorm":
            continue
        tau, k = float(run.config.tau), len(getattr(run, "classes", ())) or int(logits_of(run, "test").shape[1])
        rows.append({"tau": tau, "num_classes": k, "loss": float(run.final_train_loss),
                     "label": f"τ={tau:g} ({run.config.model}, {run.config.epochs} ep)",
                     "lower_bound": float(lower_bound(tau, k)), "tight_lower_bound": float(tight_lower_bound(tau, k))})
    columns = ["tau", "num_classes", "loss", "label", "lower_bound", "tight_lower_bound"]
    return pd.DataFrame(rows, columns=columns).sort_values("tau", ignore_index=True)


# --------------------------------------------------------------------------- what fixes overconfidence (notebook 09)
CONTROLS = ("logit_penalty", "label_smoothing", "elogitnorm")  # beside CE and LogitNorm
ACCURACY_MARGIN = 1.0  # a λ or α must keep the held-out accuracy within this many points of CE's (RESULTS.md)


def control_runs(profile: str = "reference", tau: float = 0.04, penalty: float | None = None,
                 smoothing: float | None = None, seeds: Sequence[int] | None = None, dataset: str | None = None,
                 **options: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """CE, LogitNorm at ``tau`` and the three controls of :data:`CONTROLS` (logit penalty, label smoothing,
    ELogitNorm), each over its seeds, as ``(runs, choices)``.

    ``penalty`` (λ) and ``smoothing`` (α): given, or (None) chosen on validation data among the values the
    reference source ships (profile ``reference``), by :func:`lnlab.tau.pick` among those whose held-out
    accuracy is at least CE's minus :data:`ACCURACY_MARGIN` points (benchmarks/RESULTS.md, this round's
    protocol); for a trainable profile the loss's default (``TrainConfig``). ``choices`` maps each of the two
    losses to ``{"value": …, "candidates": DataFrame of lnlab.tau.seed_table or None, "how": how it was set}``.
    A control the reference source lacks is left out (one line says so). ``options``: :func:`comparison_runs`'s.
    """
    from lnlab.config import TrainConfig
    from lnlab.tau import pick, seed_table

    reference = profile == REFERENCE
    given = {"logit_penalty": penalty, "label_smoothing": smoothing}
    field = {"logit_penalty": "penalty", "label_smoothing": "smoothing"}
    losses: list[LossSpec] = []
    choices: dict[str, Any] = {}
    for loss in CONTROLS:
        if loss == "elogitnorm":
            if not reference or _shipped_seeds({"loss": loss}, {"dataset": dataset}):
                losses.append({"loss": loss})
            else:
                print(f"the reference runs have no {loss} run: left out")
            continue
        values = [given[loss]] if given[loss] is not None else (
            _shipped_values(loss, dataset) if reference else [getattr(TrainConfig(), field[loss])])
        if not values:
            print(f"the reference runs have no {loss} run: left out")
            continue
        candidates, how = None, "given" if given[loss] is not None else "the loss's default"
        if given[loss] is None and reference:
            found = comparison_runs(profile, taus=[], losses=[{"loss": loss, field[loss]: v} for v in values],
                                    seeds=[0], dataset=dataset, validation=True, **options)
            base = _held_out_accuracy(found["CE"][0])
            candidates = seed_table(found, loss)
            values = [pick(found, loss, min_val_accuracy=base - ACCURACY_MARGIN)]
            how = ("chosen on validation data among the shipped candidates" if len(candidates) > 1 else
                   "the only candidate shipped so far: not a validated choice yet")
        choices[loss] = {"value": values[0], "candidates": candidates, "how": how}
        losses.append({"loss": loss, field[loss]: values[0]})
    each = reference and seeds is None
    runs = comparison_runs(profile, taus=[tau], losses=losses, seeds=seeds, dataset=dataset, each_seeds=each,
                           **options)
    return runs, choices


def _held_out_accuracy(run: Any) -> float:
    """Accuracy (%) of a run on its held-out training images (``"val"``)."""
    from lnlab.splits import VALIDATION_ID

    return 100 * float((run.logits_for(VALIDATION_ID).argmax(1) == run.labels_for(VALIDATION_ID)).float().mean())


def _shipped_values(loss: str, dataset: str | None) -> list[float]:
    """The values of ``loss``'s hyperparameter the reference recipe (of ``dataset``) ships, sorted."""
    from lnlab.shipped import recipe_for, reference_recipes, reference_runs

    if not reference_recipes():
        return []
    return sorted({param for name, param, _ in reference_runs(recipe_for(dataset)) if name == loss})


# --------------------------------------------------------------------------- τ against the number of classes (notebook 07)
def tau_studies(profile: str, datasets: Sequence[str], sweep_taus: Sequence[float] | None = None,
                seeds: Sequence[int] | None = None, **options: Any) -> dict[str, dict[str, Any]]:
    """One τ study per training set: ``{dataset: {label: Seeds}}`` of CE and LogitNorm at each τ (the reference
    source's τ values and each τ's own seeds for profile ``reference``, else ``sweep_taus``), validation sets
    required. A training set the reference source has no runs of is left out, with one line saying so."""
    from lnlab.profiles import sweep_taus as grid

    studies = {}
    for dataset in datasets:
        try:
            taus = grid(profile, sweep_taus, dataset)
        except ValueError as exc:
            print(f"{dataset}: left out ({exc})")
            continue
        if not taus:
            print(f"{dataset}: left out (the reference runs trained on it have no LogitNorm run yet)")
            continue
        studies[dataset] = comparison_runs(profile, taus=taus, seeds=seeds, dataset=dataset, validation=True,
                                           each_seeds=profile == REFERENCE and seeds is None, **options)
    return studies


def num_classes(runs: dict[str, Any]) -> int:
    """The number of classes k of the runs' training set (their logits' width)."""
    first = next(iter(runs.values()))
    return int((first[0] if isinstance(first, list) else first).logits_for("test").shape[1])
