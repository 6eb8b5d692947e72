"""Portable runs: a finished run as a small folder of plain files (what it recorded, its logits, and
optionally its weights in float16), to share and ship.

A long run (the paper's WRN-40-2 for 200 epochs on a GPU, paper Sec. 5.1; the ``laptop`` recipe for
30 CPU-minutes) is trained once, but its figures need only what it recorded and its raw logits: the
logit norm per epoch (Fig. 1), the MSP histograms (Fig. 3), the OOD table on logit scores (Table 1),
the final loss against its bound (Prop. 3). ``export_run`` writes them as a folder ``<to>/<key>/``:

- ``run.json``: key, config (``ood`` lists the OOD sets stored, ``device`` is the device type it
  trained on, so ``key()`` gives the same key on any machine), canonical config, per-epoch history
  (losses, accuracies, logit-norm statistics), classes, final train loss, provenance (lnlab
  ``__version__``, ``ENGINE_VERSION``, git commit, device, wall time) and the stored sets in order,
  each with the fingerprint of its images (``lnlab.evaluate.fingerprint``), its size and dtype; the
  sets its per-epoch history covers (``history_sets``) and the snapshot epochs stored;
- ``logits.npz``: numpy arrays only (read without pickle): float16 raw logits per set (float32
  where a value would overflow float16), int16 / int64 labels of the ID sets, and the test and OOD
  logits at the snapshot epochs (``lnlab.train.SNAPSHOT_FRACTIONS``);
- ``weights.npz`` (``weights=True``): the final state dict, floating tensors in float16 (a 0.49M
  parameter ``airnet`` is about 1 MB), so that ODIN, GradNorm and new sets work on the run too;
- ``manifest.json``, written last: format version and the sha256 of the files above.

``load_portable`` verifies a folder and returns a :class:`PortableRun`, a :class:`lnlab.store.Run`
that reads the stored sets; with weights it computes other sets and weight-based scores (float32
network from the float16 weights; results cached in the run cache, never in the shipped folder),
without them it cannot. ``import_runs`` copies exports into the run cache, where
:func:`lnlab.runs.get_run` loads them under their key and never retrains them. The shipped runs
(the reference source) are portable runs too: :mod:`lnlab.shipped`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

import lnlab
from lnlab import evaluate
from lnlab.atomic import atomic_write, atomic_write_json, sha256_file
from lnlab.config import ENGINE_VERSION, ID_SET_NAMES, TrainConfig
from lnlab.data import DatasetNotFoundError
from lnlab.models import build_for
from lnlab.paths import runs_root
from lnlab.provenance import git_commit
from lnlab.scores import LOGIT_SCORES
from lnlab.splits import VALIDATION_ID, VALIDATION_OOD_SETS, eval_set
from lnlab.store import MANIFEST, CacheError, Run, load_run, replace_folder

__all__ = ["PortableRun", "export_run", "load_portable", "import_runs", "is_portable", "default_sets",
           "RUN_FILE", "WEIGHTS_FILE"]

FORMAT, FORMAT_VERSION = "lnlab-portable-run", 2  # 2: snapshots, history_sets, optional weights.npz
RUN_FILE, LOGITS_FILE, WEIGHTS_FILE = "run.json", "logits.npz", "weights.npz"
PORTABLE_FILES = (RUN_FILE, LOGITS_FILE)  # always there; WEIGHTS_FILE when exported with weights
# The field that picks the images of each set (the others are fixed by the training fields).
_IMAGES_FIELD = {"test": "test_subset_per_class", "train": "norm_subset", "val": None}
_FLOAT16_MAX = float(np.finfo(np.float16).max)


@dataclass(repr=False, eq=False)
class PortableRun(Run):
    """A shipped run: its history, the logits of the stored sets, and maybe its weights (module docstring).

    ``stored`` describes each stored set (fingerprint, count, dtype); ``trained`` is the config
    the run was exported with (its evaluation fields say which images the stored sets are).
    ``eval_home``: the run-cache folder where results computed from its weights are kept.
    """

    stored: dict[str, dict] = field(default_factory=dict)
    trained: TrainConfig | None = None
    meta: dict = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    from_cache: bool = True
    eval_home: Path | None = None

    @property
    def has_weights(self) -> bool:
        return WEIGHTS_FILE in self.meta.get("_files", ())

    def _snapshots(self) -> dict[int, dict[str, torch.Tensor]]:
        memo = self.__dict__
        if "_snapshot_memo" not in memo:
            memo["_snapshot_memo"] = {
                int(epoch): {name: torch.from_numpy(self.arrays[key].astype(np.float32)) for name, key in sets.items()}
                for epoch, sets in self.meta.get("snapshots", {}).items()}
        return memo["_snapshot_memo"]

    @property
    def sets(self) -> list[str]:
        """The evaluation sets stored (the only ones this run can give logits for)."""
        return list(self.stored)

    def logits_for(self, name: str) -> torch.Tensor:
        """The stored float32 raw logits of set ``name``; another set is computed from the weights if the
        run has them (``lnlab.evaluate.logits_for``), else ValueError."""
        if self.has_weights and not self._stored_matches(name):
            return evaluate.logits_for(self, name)
        self._check_stored(name)
        memo = self.__dict__.setdefault("_eval_memo", {})
        if ("logits", name) not in memo:
            memo[("logits", name)] = torch.from_numpy(self.arrays[self.stored[name]["logits"]].astype(np.float32))
        return memo[("logits", name)]

    def labels_for(self, name: str) -> torch.Tensor:
        """The stored labels of an ID set ("test", "val", "train")."""
        if self.has_weights and not self._stored_matches(name):
            return evaluate.labels_for(self, name)
        self._check_stored(name)
        if self.stored[name].get("labels") is None:
            raise ValueError(f"{name!r} is an OOD set and has no labels; pass 'test', 'val' or 'train'")
        return torch.from_numpy(self.arrays[self.stored[name]["labels"]].astype(np.int64))

    def model(self) -> nn.Module:
        """The network with its shipped weights (float16 on disk, float32 here), on CPU, in eval mode."""
        if not self.has_weights:
            raise ValueError(f"run {self.key} ({self.config.label()}) has no weights: it is a portable run (history "
                             "and logits only); scores that need the network (ODIN, GradNorm) and new sets need the "
                             "run trained here (`lnlab train`)")
        with np.load(Path(self.directory) / WEIGHTS_FILE, allow_pickle=False) as npz:
            state = {name: torch.from_numpy(npz[name].astype(np.float32) if npz[name].dtype == np.float16 else npz[name])
                     for name in npz.files}
        net = build_for(self.config, len(self.classes))
        net.load_state_dict(state)
        return net.eval()

    def stored_score(self, score_name: str, name: str, settings: dict) -> torch.Tensor | None:
        """The shipped values of a weight-based score (ODIN, GradNorm) on a stored set, if exported with
        exactly these ``settings``; else None (then it is computed from the weights)."""
        entry = self.meta.get("scores", {}).get(score_name)
        if not entry or entry["settings"] != dict(settings) or name not in entry["sets"] or not self._stored_matches(name):
            return None
        return torch.from_numpy(self.arrays[entry["sets"][name]].astype(np.float32))

    def _stored_matches(self, name: str) -> bool:
        try:
            self._check_stored(name)
            return True
        except ValueError:
            return False

    def _check_stored(self, name: str) -> None:
        if name not in self.stored:
            raise ValueError(f"run {self.key} ({self.config.label()}) stores the sets {self.sets}, not {name!r}: a "
                             "run without weights cannot compute new sets; pick a stored set or train the run")
        field_name = _IMAGES_FIELD.get(name, "ood_limit")
        if field_name and self.trained is not None:
            asked, stored = getattr(self.config, field_name), getattr(self.trained, field_name)
            if asked != stored:
                raise ValueError(f"the stored {name!r} logits of run {self.key} are for {field_name}={stored}, the "
                                 f"config asks {field_name}={asked}: a run without weights cannot compute new sets; "
                                 f"pass {field_name}={stored}")


# --------------------------------------------------------------------------- export


def export_run(run: Run | str | os.PathLike, to: str | os.PathLike, sets: Sequence[str] | None = None,
               weights: bool = False, snapshots: bool = True, scores: bool | None = None) -> Path:
    """Write the portable copy of a finished run (a Run or its folder) to ``<to>/<key>/``; return that folder.

    ``sets``: evaluation sets to store (default :func:`default_sets`). Logits of sets the run has not
    evaluated yet are computed from its weights first (``Run.logits_for``). ``weights``: also write
    the final weights in float16 (``weights.npz``) and the weight-based scores (ODIN, GradNorm, at
    ``lnlab.evaluate.SCORE_SETTINGS``) of the test and OOD sets, computed from the float32 weights, so
    that the OOD table of a shipped run needs no network pass. ``snapshots=False``: leave out the logits
    along training (``Run.snapshot``; about a third of a CIFAR-10 run's export, more with 100 classes), for
    runs whose figures read only the final logits and the per-epoch history. ``scores`` (default: as
    ``weights``): store those weight-based scores; ``scores=True`` with ``weights=False`` ships a run whose OOD
    table has every score on its stored sets without its weights (about 0.9 MB less for airnet). A shipped run
    without weights, exported again (to drop a set or its snapshots), passes on the scores it carries.
    """
    run = _verified(run)
    names = list(dict.fromkeys(sets)) if sets else default_sets(run)
    if "test" not in names:
        raise ValueError(f"sets must include 'test' (accuracy, the ID side of every OOD metric); got {names}")
    target = Path(to).expanduser().resolve() / run.key
    if target == Path(run.directory).resolve() or (target / "model.pt").exists():
        raise ValueError(f"{target} holds a run with weights; export into another folder (--to)")
    arrays, stored = {}, {}
    for i, name in enumerate(names):
        logits = run.logits_for(name).float().numpy()
        small = np.isfinite(logits).all() and float(np.abs(logits).max(initial=0)) < _FLOAT16_MAX
        arrays[f"logits_{i}"] = logits = logits.astype(np.float16 if small else np.float32)
        entry = {"name": name, "logits": f"logits_{i}", "labels": None, "count": len(logits),
                 "dtype": str(logits.dtype), "fingerprint": _fingerprint(run, name)}
        if name in ID_SET_NAMES:
            labels = run.labels_for(name).numpy()
            arrays[f"labels_{i}"] = labels.astype(np.int16 if labels.max(initial=0) < 2 ** 15 else np.int64)
            entry["labels"] = f"labels_{i}"
        stored[name] = entry
    kept: dict[str, dict[str, str]] = {}
    for epoch in run.snapshot_epochs[:-1] if snapshots else ():  # the last epoch is the stored sets themselves
        for name in names:
            if name in stored and stored[name]["labels"] is None or name == "test":
                try:
                    values = run.snapshot(epoch, name).numpy()
                except ValueError:  # a set not kept at snapshots (validation sets)
                    continue
                key = f"snapshot_{epoch}_{names.index(name)}"
                arrays[key] = values.astype(np.float16 if np.abs(values).max(initial=0) < _FLOAT16_MAX else np.float32)
                kept.setdefault(str(epoch), {})[name] = key
    stored_scores: dict[str, dict] = {}
    if weights if scores is None else scores:
        for score_name in (s for s in evaluate.SCORE_SETTINGS if s not in LOGIT_SCORES):
            settings = dict(evaluate.SCORE_SETTINGS[score_name])
            entry = {"settings": settings, "sets": {}}
            for name in names:
                if name != "test" and stored[name]["labels"] is not None:
                    continue  # the test set and the OOD sets only
                if not run.has_weights and run.stored_score(score_name, name, settings) is None:
                    continue  # a shipped run without weights, exported again, passes on the scores it carries
                key = f"score_{score_name}_{names.index(name)}"
                arrays[key] = evaluate.score_values(run, score_name, name).numpy().astype(np.float32)
                entry["sets"][name] = key
            if entry["sets"]:
                stored_scores[score_name] = entry
    files = list(PORTABLE_FILES) + ([WEIGHTS_FILE] if weights else [])
    target.mkdir(parents=True, exist_ok=True)
    (target / MANIFEST).unlink(missing_ok=True)  # the old manifest never vouches for new files
    (target / WEIGHTS_FILE).unlink(missing_ok=True)
    atomic_write_json(target / RUN_FILE, {**_run_json(run, names, stored, kept), "scores": stored_scores})
    atomic_write(target / LOGITS_FILE, lambda handle: np.savez_compressed(handle, **arrays))
    if weights:
        state = {k: v.numpy().astype(np.float16) if v.is_floating_point() else v.numpy()
                 for k, v in run.model().state_dict().items()}
        atomic_write(target / WEIGHTS_FILE, lambda handle: np.savez_compressed(handle, **state))
    atomic_write_json(target / MANIFEST, {"format": FORMAT, "format_version": FORMAT_VERSION, "key": run.key,
                                          "files": {n: sha256_file(target / n) for n in files}})
    return target


def default_sets(run: Run) -> list[str]:
    """"test", each set of ``run.config.ood`` available here, "train" (norm subset), and "val" + the
    validation OOD sets (``lnlab.splits.VALIDATION_OOD_SETS``: paper Sec. 5.1 validation, :mod:`lnlab.tau`)
    when the run holds training images out."""
    if isinstance(run, PortableRun):
        return run.sets
    names = ["test"]
    for name in run.config.ood:
        try:
            eval_set(run.config, name)
            names.append(name)
        except DatasetNotFoundError:
            continue
    names.append("train")
    if run.config.subset_per_class is not None:
        try:
            eval_set(run.config, VALIDATION_ID)
            names += [VALIDATION_ID, *VALIDATION_OOD_SETS]
        except ValueError:  # the subset uses every training image of some class: nothing held out
            pass
    return names


def _verified(run: Run | str | os.PathLike) -> Run:
    """The run re-read from its folder and verified; ValueError for anything else."""
    directory = Path(run.directory if isinstance(run, Run) else run).expanduser()
    config = run.config if isinstance(run, Run) else None
    try:
        return load_portable(directory, config) if is_portable(directory) else load_run(directory, config)
    except CacheError as exc:
        raise ValueError(f"{directory} is not a finished, verified run ({exc}); export a run folder that "
                         "`lnlab train` finished (it has manifest.json)") from None


def _fingerprint(run: Run, name: str) -> str:
    if isinstance(run, PortableRun):
        return run.stored[name]["fingerprint"]
    return evaluate.fingerprint(eval_set(run.config, name).images)


def _run_json(run: Run, names: list[str], stored: dict[str, dict], snapshots: dict) -> dict[str, Any]:
    canonical = run.config.canonical()
    oods = tuple(n for n in names if n not in ID_SET_NAMES and n not in VALIDATION_OOD_SETS)  # its tables' OOD rows
    config = run.config.replace(ood=oods, data_root=None, device=canonical["device"])
    if config.key() != run.key:
        raise ValueError(f"run {run.key}: its config gives key {config.key()} (made by another lnlab version?); "
                         "export it with the lnlab that trained it")
    source = run.meta.get("provenance", {}) if isinstance(run, PortableRun) else dict(run.provenance)
    provenance = {"lnlab_version": lnlab.__version__, "engine_version": ENGINE_VERSION, "git_commit": git_commit(),
                  "device": canonical["device"], "wall_seconds": sum(float(r.get("seconds", 0)) for r in run.history),
                  **source, "exported_with": {"lnlab_version": lnlab.__version__, "git_commit": git_commit()}}
    return {"key": run.key, "config": config.to_dict(), "canonical": canonical, "history": run.history,
            "history_sets": run.history_sets, "classes": list(run.classes), "final_train_loss": run.final_train_loss,
            "sets": list(stored.values()), "snapshots": snapshots, "provenance": provenance}


# --------------------------------------------------------------------------- load


def is_portable(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` is a portable run (complete or not: it has ``run.json``)."""
    return (Path(directory) / RUN_FILE).is_file()


def load_portable(directory: str | os.PathLike, config: TrainConfig | None = None) -> PortableRun:
    """Verify a portable run folder against its manifest and load it (``config``: same key, sets the
    evaluation fields; default: the exported config). Raises ``CacheError`` naming a bad file."""
    directory = Path(directory)
    redo = "re-export the run (`lnlab export`) and import it again"
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
        files, version = manifest["files"], manifest["format_version"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CacheError(f"{directory / MANIFEST} is missing or unreadable ({type(exc).__name__}); {redo}") from None
    if manifest.get("format") != FORMAT or not isinstance(version, int) or version > FORMAT_VERSION:
        raise CacheError(f"{directory / MANIFEST}: format {manifest.get('format')!r} version {version!r} is not one "
                         f"this lnlab reads ({FORMAT} <= {FORMAT_VERSION}); upgrade lnlab or {redo}")
    if not isinstance(files, dict) or set(files) - {*PORTABLE_FILES, WEIGHTS_FILE}:
        raise CacheError(f"{directory / MANIFEST} lists unknown files; {redo}")
    for name in (*PORTABLE_FILES, *(n for n in files if n not in PORTABLE_FILES)):
        if not (directory / name).is_file():
            raise CacheError(f"{directory / name} is missing; {redo}")
        if sha256_file(directory / name) != files.get(name):
            raise CacheError(f"{directory / name} does not match its checksum (truncated or modified); {redo}")
    try:
        meta = json.loads((directory / RUN_FILE).read_text())
        trained = TrainConfig.from_dict(meta["config"])
        key, history, classes = meta["key"], meta["history"], list(meta["classes"])
        stored = {entry["name"]: entry for entry in meta["sets"]}
        meta["_files"] = sorted(files)
        with np.load(directory / LOGITS_FILE, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except Exception as exc:  # noqa: BLE001 - any failure means the export is unusable
        raise CacheError(f"cannot read the portable run in {directory} ({type(exc).__name__}: {exc}); {redo}") from None
    if not (isinstance(key, str) and re.fullmatch(r"[0-9a-f]{16}", key) and key == trained.key() == manifest.get("key")):
        raise CacheError(f"{directory / RUN_FILE}: its key {key!r} is not the key of its config ({trained.key()}) and "
                         f"its manifest ({manifest.get('key')!r}); exported by another lnlab version? {redo}")
    if config is not None and config.key() != key:
        raise CacheError(f"the run in {directory} has key {key}, not {config.key()}")
    return PortableRun(_stored_view(config, trained, stored, WEIGHTS_FILE in files), key, directory, history,
                       classes, provenance=meta.get("provenance", {}), tracked=list(meta.get("history_sets", [])),
                       stored=stored, trained=trained, meta=meta,
                       arrays=arrays)


def _stored_view(config: TrainConfig | None, trained: TrainConfig, stored: dict, weights: bool) -> TrainConfig:
    """The config a portable run answers to: the asked one, its OOD sets narrowed to those stored
    (unless it has weights to compute the others)."""
    if config is None:
        return trained
    if weights:
        return config
    kept = tuple(name for name in config.ood if name in stored)
    if kept != config.ood:
        warnings.warn(f"run {trained.key()} is a portable run without weights: it stores the OOD sets {list(kept)}, "
                      f"not {sorted(set(config.ood) - set(kept))}; using those it stores", stacklevel=3)
    return config.replace(ood=kept or trained.ood)


# --------------------------------------------------------------------------- import


def import_runs(paths: Iterable[str | os.PathLike], root: str | os.PathLike | None = None,
                report: Callable[[str], None] | None = None) -> list[str]:
    """Verify exported runs (folders, or folders holding several) and copy them into the run cache.

    Each lands in ``runs_root(root)/<key>/`` atomically (copied into a temporary folder in the root,
    then renamed). A run already there with the same manifest is left as it is; a run with weights
    is never overwritten (ValueError). Returns the keys imported; ``report`` gets one line per run.
    """
    report = report or (lambda line: None)
    runs = [load_portable(folder) for folder in _export_folders(paths)]  # verify every one before copying any
    base = runs_root(root)
    for run in runs:
        target = base / run.key
        if (target / "model.pt").exists() or (target / "config.json").exists():
            raise ValueError(f"{target} holds the run {run.key} with its weights; it is not replaced by a copy "
                             "without them (import into another cache with --runs)")
        if (target / "checkpoint.pt").exists():
            raise ValueError(f"{target} holds an unfinished training of run {run.key} (checkpoint.pt); let it "
                             "finish or delete that folder, then import")
    imported = []
    for run in runs:
        target = base / run.key
        label = f"{run.key} ({run.config.label()}, seed {run.config.seed})"
        if _same_export(Path(run.directory), target):
            report(f"{label}: already in {target}")
            continue
        _copy_into(Path(run.directory), target)
        load_portable(target)
        imported.append(run.key)
        report(f"{label}: imported into {target}")
    return imported


def _export_folders(paths: Iterable[str | os.PathLike]) -> list[Path]:
    folders = []
    for path in (Path(p).expanduser() for p in paths):
        if not path.is_dir():
            raise FileNotFoundError(f"no folder {path}: pass exported run folders (from `lnlab export`) or a "
                                    "folder holding several")
        found = [path] if is_portable(path) else sorted(p for p in path.iterdir() if is_portable(p))
        if not found:
            raise ValueError(f"{path} holds no exported run (a folder with run.json and manifest.json); make one "
                             "with `lnlab export`")
        folders += found
    return folders


def _same_export(source: Path, target: Path) -> bool:
    try:
        if (target / MANIFEST).read_bytes() != (source / MANIFEST).read_bytes():
            return False
        load_portable(target)  # the copy there is intact
        return True
    except (OSError, CacheError):
        return False


def _copy_into(source: Path, target: Path) -> None:
    """Copy an export folder to ``target`` (staged beside it, verified, renamed: :func:`lnlab.store.replace_folder`)."""
    def fill(staging: Path) -> None:
        for name in (*PORTABLE_FILES, WEIGHTS_FILE, MANIFEST):
            if name != WEIGHTS_FILE or (source / name).is_file():
                shutil.copyfile(source / name, staging / name)

    replace_folder(target, fill, load_portable)
