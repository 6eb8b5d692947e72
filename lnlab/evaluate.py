"""Evaluation of finished runs: float32 logits and scores on any set, cached next to the run; the OOD table.

``logits_for(run, name)`` (also ``Run.logits_for``) computes a run's raw float32 logits on an
evaluation set (``lnlab.splits.eval_set``: "test", "val", "train", a registered OOD set, a user's
own pack or image folder, or a path) once from the saved weights and stores them under
``<run>/eval/`` (atomic write, then a sha256 file; a mismatch is recomputed). The file name holds a
fingerprint of the images, so another subset or changed files never reuse stale logits. It
never trains. ``score_values`` does the same for post-hoc scores, ``ood_table`` turns them into
the paper's table (Table 1: FPR95 ↓, AUROC ↑, AUPR ↑; Table 3: other post-hoc scores).

Scores are computed on the raw logits, as in the official LogitNorm code (the normalisation is
only part of the training loss, paper Eq. 7).
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from lnlab.atomic import atomic_torch_save, atomic_write, sha256_file
from lnlab.data import Loader
from lnlab.precision import autocast, use_bf16
from lnlab.splits import eval_set

EVAL_BATCH_SIZE = 1024
EVAL_DIR = "eval"
NORM_STATS = {"mean": None, "median": 0.5, "p10": 0.1, "p90": 0.9}
METRICS = ("fpr95", "auroc", "aupr")
# Settings of each post-hoc score and where they come from.
SCORE_SETTINGS: dict[str, dict[str, float]] = {
    "msp": {"temperature": 1.0},  # Hendrycks & Gimpel 2017; the paper's main score (Sec. 5)
    "energy": {"temperature": 1.0},  # Liu et al. 2020: T = 1
    "max_logit": {},  # Hendrycks et al. 2022
    "odin": {"temperature": 1000.0, "epsilon": 0.0014},  # Liang et al. 2018, CIFAR-10: T = 1000, eps = 0.0014
    "gradnorm": {"temperature": 1.0},  # Huang et al. 2021: T = 1
    "logit_norm": {},  # ||f||_2, paper Fig. 1
}
PAPER_OOD_SETS = ("textures", "svhn", "places365", "lsun-c", "lsun-r", "isun")  # paper Table 1


# --------------------------------------------------------------------------- inference


def eval_loader(images: torch.Tensor, device: torch.device, channels_last: bool) -> Loader:
    """Un-augmented, unshuffled batches of normalized images on ``device``."""
    return Loader(images, None, batch_size=EVAL_BATCH_SIZE, shuffle=False, augment=False, device=device,
                  channels_last=channels_last)


@torch.inference_mode()
def predict(model: nn.Module, loader: Loader, bf16: bool = False, progress: str | None = None) -> torch.Tensor:
    """Raw logits (float32, CPU) of every image in ``loader``, model in eval mode, in bf16 autocast if
    ``bf16`` (``lnlab.precision.use_bf16``); the network's classifier head still runs in float32
    (``lnlab.models``). ``progress``: the description of a progress bar (None: no bar).
    """
    model.eval()
    device = next(model.parameters()).device
    outputs = []
    for x, _ in tqdm(loader, desc=progress, unit="batch", leave=False, disable=progress is None):
        with autocast(device, bf16):
            outputs.append(model(x).float())
    return torch.cat(outputs).cpu()


def norm_stats(logits: torch.Tensor) -> dict[str, float]:
    """Mean, median, 10th and 90th percentile of the raw logit norm ||f(x)||_2 (paper Sec. 3)."""
    norms = torch.linalg.vector_norm(logits.float(), dim=1)
    return {name: float(norms.mean()) if q is None else float(torch.quantile(norms, q))
            for name, q in NORM_STATS.items()}


def fingerprint(images: torch.Tensor) -> str:
    """16 hex digits of the sha256 of the uint8 images: names a set's cached results."""
    return hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest()[:16]


def entry_name(name: str, images: torch.Tensor) -> str:
    """File stem of a set's cache entries, e.g. ``textures-1f2e…`` (paths are reduced to their stem)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(str(name)).stem or str(name))
    return f"{stem}-{fingerprint(images)}"


# --------------------------------------------------------------------------- cached per-run results


def eval_directory(run: Any) -> Path:
    """Where a run's computed results are cached: ``<run>/eval/``, or for a read-only shipped run
    (``run.eval_home``, a folder in the run cache) ``<eval_home>/eval/``."""
    return Path(getattr(run, "eval_home", None) or run.directory) / EVAL_DIR


def logits_for(run: Any, name: str) -> torch.Tensor:
    """Float32 raw logits of ``run`` on evaluation set ``name``, computed once from the saved weights."""
    memo = run.__dict__.setdefault("_eval_memo", {})
    if ("logits", name) not in memo:
        data = eval_set(run.config, name)
        path = eval_directory(run) / f"logits-{entry_name(name, data.images)}.pt"
        memo[("logits", name)] = cached_tensor(path, lambda: _infer(run, data.images, name))
    return memo[("logits", name)]


def labels_for(run: Any, name: str) -> torch.Tensor:
    """Class labels of an ID evaluation set ("test", "val", "train") of ``run``."""
    labels = eval_set(run.config, name).labels
    if labels is None:
        raise ValueError(f"{name!r} is an OOD set and has no labels; pass 'test', 'val' or 'train'")
    return labels


def score_values(run: Any, score_name: str, name: str, settings: Mapping[str, float] | None = None) -> torch.Tensor:
    """Post-hoc score ``score_name`` (higher = more ID) of ``run`` on set ``name``.

    ``settings`` default to :data:`SCORE_SETTINGS`. Logit scores come from :func:`logits_for`;
    ODIN and GradNorm need the network and are cached like the logits (a run without weights,
    i.e. a portable run, raises ValueError: see :func:`scores_for`).
    """
    from lnlab.scores import LOGIT_SCORES, score

    check_scores([score_name], {score_name: settings or {}})
    settings = {**SCORE_SETTINGS[score_name], **(settings or {})}
    if score_name in LOGIT_SCORES:
        return score(score_name, logits_of(run, name), **settings)
    if not hasattr(run, "directory"):
        raise ValueError(f"score {score_name!r} needs the network: pass Runs, not dicts of logits")
    shipped = getattr(run, "stored_score", lambda *args: None)(score_name, name, settings)
    if shipped is not None:  # a shipped run carries its weight-based scores (lnlab.portable), with or without weights
        return shipped
    if not getattr(run, "has_weights", True):
        raise ValueError(f"score {score_name!r} needs the network, and run {run.key} ({run.config.label()}) has no "
                         f"weights and no stored {score_name} scores of {name!r} (a portable run); use a logit score "
                         f"{list(LOGIT_SCORES)} or train the run here")
    memo = run.__dict__.setdefault("_eval_memo", {})
    key = (score_name, name, json.dumps(settings, sort_keys=True))
    if key not in memo:
        data = eval_set(run.config, name)
        tag = hashlib.sha256(key[2].encode()).hexdigest()[:8]
        path = eval_directory(run) / f"{score_name}-{tag}-{entry_name(name, data.images)}.pt"
        memo[key] = cached_tensor(path, lambda: _model_scores(run, score_name, data.images, settings))
    return memo[key]


def logits_of(source: Any, name: str) -> torch.Tensor:
    """Logits of a Run (``logits_for``) or of a plain ``{set name: logits}`` dict (tests, quick looks)."""
    if hasattr(source, "logits_for"):
        return source.logits_for(name)
    if name not in source:
        raise ValueError(f"no logits for set {name!r}; available: {sorted(source)}")
    return source[name]


def cached_tensor(path: Path, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
    """``path`` if it matches its ``.sha256`` file, else ``compute()`` written atomically, checksum last.

    A run folder that cannot be written (e.g. a read-only reference run) keeps the result in memory only.
    """
    check = path.with_suffix(".sha256")
    if path.is_file() and check.is_file():
        if sha256_file(path) == check.read_text().strip():
            return torch.load(path, map_location="cpu", weights_only=True)
        warnings.warn(f"{path} does not match its checksum (truncated or modified); recomputing", stacklevel=3)
    value = compute().float().contiguous()
    try:
        atomic_torch_save(path, value)
        atomic_write(check, lambda handle: handle.write(sha256_file(path).encode()))
    except OSError:
        pass
    return value


def store_tensor(path: Path, value: torch.Tensor) -> None:
    """Write a cache entry the way :func:`cached_tensor` reads it (used for logits computed in training)."""
    path.unlink(missing_ok=True)
    cached_tensor(path, lambda: value)


def _device(run: Any) -> torch.device:
    """The run's own device type (a GPU run falls back to the CPU where there is none), so every
    set of a run is evaluated with the precision it was trained with (``canonical()``: bf16 on CUDA)."""
    device = torch.device(run.config.resolved_device())
    return device if device.type != "cuda" or torch.cuda.is_available() else torch.device("cpu")


def _network(run: Any) -> nn.Module:
    memo = run.__dict__.setdefault("_eval_memo", {})
    if "model" not in memo:
        model = run.model().to(_device(run))
        memo["model"] = model.to(memory_format=torch.channels_last) if run.config.channels_last else model
    return memo["model"]


def _infer(run: Any, images: torch.Tensor, name: str = "") -> torch.Tensor:
    """Logits of ``images`` from the run's network; a progress bar when the run asks for one (``run.progress``)."""
    device = _device(run)
    bf16 = use_bf16(bool(run.config.canonical()["amp"]), device)
    bar = f"{run.config.label()}: logits of {name}" if getattr(run, "progress", False) else None
    return predict(_network(run), eval_loader(images, device, run.config.channels_last), bf16=bf16, progress=bar)


def _model_scores(run: Any, score_name: str, images: torch.Tensor, settings: Mapping[str, float]) -> torch.Tensor:
    from lnlab.scores import score

    model = _network(run).eval()
    loader = Loader(images, None, batch_size=256, shuffle=False, augment=False, device=_device(run))
    return torch.cat([score(score_name, model=model, x=x, **settings).cpu() for x, _ in loader])


# --------------------------------------------------------------------------- the OOD table


def check_scores(names: Sequence[str], settings: Mapping[str, Mapping[str, float]] | None = None) -> None:
    """Raise ValueError (before any work) for an unknown score name or an unknown setting of a score."""
    from lnlab.scores import available_scores

    bad = [n for n in names if n not in available_scores()]
    if bad:
        raise ValueError(f"unknown score(s) {bad}; pass scores from {available_scores()}")
    for name, values in (settings or {}).items():
        allowed = set(SCORE_SETTINGS.get(name, {})) | ({"std"} if name == "odin" else set())
        wrong = sorted(set(values) - allowed)
        if wrong:
            raise ValueError(f"unknown setting(s) {wrong} for score {name!r}; it takes {sorted(allowed) or 'none'}")


def runs_of(group: Any) -> list[Any]:
    """The runs of one table entry: a list of seeds (``lnlab.runs.Seeds``) or a single run / logits dict."""
    return list(group) if isinstance(group, list) else [group]


def scores_for(runs: Mapping[str, Any], scores: Sequence[str],
               sets: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """``(usable, skipped)``: ``scores`` split by whether every run can compute them. A score that needs the
    network (ODIN, GradNorm) is skipped when a run has no weights (a portable run), unless that run stores
    the score (at its default settings) for "test" and every set of ``sets``."""
    from lnlab.scores import MODEL_SCORES

    def usable(run: Any, name: str) -> bool:
        if getattr(run, "has_weights", False):
            return True
        stored = getattr(run, "stored_score", None)
        return stored is not None and sets is not None and all(
            stored(name, s, SCORE_SETTINGS[name]) is not None for s in ["test", *sets])

    members = [run for group in runs.values() for run in runs_of(group)]
    skipped = [name for name in scores if name in MODEL_SCORES and not all(usable(r, name) for r in members)]
    return [name for name in scores if name not in skipped], skipped


def ood_rows(runs: Mapping[str, Any], root: Any = None) -> list[str]:
    """OOD sets for a table of ``runs``: every registered OOD set available under the data ``root``;
    with portable runs among them (shipped or imported: :mod:`lnlab.portable`), the OOD sets all of
    those store instead: a run without weights has no others, and one with weights computes another
    set (logits, ODIN, GradNorm: seconds per run) only when it is asked for by name."""
    from lnlab.data import available_ood_sets

    members = [run for group in runs.values() for run in runs_of(group)]
    portable = [run for run in members if hasattr(run, "stored")]
    if not portable:
        return available_ood_sets(members[0].config.dataset, root=root)
    return [name for name in portable[0].trained.ood if all(name in run.sets for run in portable)]


def default_oods(runs: Mapping[str, Any]) -> list[str]:
    """OOD sets of the first run's config (its ``ood`` field), or the OOD keys of a logits dict."""
    first = runs_of(next(iter(runs.values())))[0]
    if hasattr(first, "config"):
        return list(first.config.ood)
    return [name for name in first if name != "test"]


def ood_table(runs: Mapping[str, Any], scores: Sequence[str] = ("msp",), oods: Sequence[str] | None = None,
              id_set: str = "test", settings: Mapping[str, Mapping[str, float]] | None = None):
    """The paper's OOD table (Table 1 / 3) in %: rows = OOD sets + "mean", columns = (run, score, metric, stat).

    ``runs`` maps a label to a Run, a ``Seeds`` list (several seeds of one config) or a dict of
    logits. ``metric`` is fpr95 (lower is better), auroc, aupr (AUPR with ID as positive, higher is
    better); ``stat`` is "mean" over seeds and "std" (sample std, NaN for one seed). The "mean" row
    averages the OOD sets per seed first. ``settings`` overrides :data:`SCORE_SETTINGS` per score.
    """
    import pandas as pd

    from lnlab.metrics import ood_metrics

    check_scores(scores, settings)
    oods = list(oods) if oods is not None else default_oods(runs)
    if not runs or not oods:
        raise ValueError("pass runs (a dict {label: Run}) and at least one OOD set")
    records = []
    for label, group in runs.items():
        for seed, run in enumerate(runs_of(group)):
            for score_name in scores:
                values = lambda name: score_values(run, score_name, name, (settings or {}).get(score_name))  # noqa: E731
                id_scores = values(id_set)
                for ood in oods:
                    m = ood_metrics(id_scores, values(ood))
                    for metric, value in zip(METRICS, (m["fpr95"], m["auroc"], m["aupr_in"])):
                        records.append((label, score_name, metric, seed, ood, 100 * value))
    long = pd.DataFrame(records, columns=["run", "score", "metric", "seed", "ood", "value"])
    means = long.groupby(["run", "score", "metric", "seed"], sort=False, as_index=False)["value"].mean()
    long = pd.concat([long, means.assign(ood="mean")], ignore_index=True)
    stats = long.groupby(["ood", "run", "score", "metric"], sort=False)["value"].agg(["mean", "std"])
    table = stats.unstack(["run", "score", "metric"]).reorder_levels([1, 2, 3, 0], axis=1)
    table.columns.names = ["run", "score", "metric", "stat"]
    order = pd.MultiIndex.from_tuples([(r, s, m, st) for r in runs for s in scores for m in METRICS
                                       for st in ("mean", "std")], names=table.columns.names)
    return table.reindex(index=[*oods, "mean"], columns=order)


def accuracy_table(runs: Mapping[str, Any], id_set: str = "test"):
    """ID accuracy in % per run: mean and std over its seeds, and the number of seeds."""
    import pandas as pd

    rows = {}
    for label, group in runs.items():
        accs = pd.Series([100 * float((r.logits_for(id_set).argmax(1) == r.labels_for(id_set)).float().mean())
                          for r in runs_of(group)])
        rows[label] = {"accuracy_mean": accs.mean(), "accuracy_std": accs.std(), "seeds": len(accs)}
    return pd.DataFrame(rows).T
