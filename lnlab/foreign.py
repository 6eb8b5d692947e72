"""Your own network as a run: any PyTorch classifier, with the input normalisation it expects, answers
what a run answers, so every figure, table, explorer and calibration function of lnlab takes it.

Wei et al. (ICML 2022, arXiv 2205.09310v2) diagnose overconfidence from a network's raw logits: their
norm (Sec. 3, Fig. 1), the MSP of ID and OOD images (Fig. 3) and the OOD table (Table 1). None of
that needs the network to be trained by lnlab. :func:`adapt` wraps an ``nn.Module`` and
:func:`load_network` a model file into a :class:`ForeignRun`, a :class:`lnlab.store.Run` whose
``logits_for(name)`` computes raw float32 logits on any evaluation set (``lnlab.splits.eval_set``: the
training set's "test" split for labels and accuracy, a registered OOD set, a user's pack, folder or
path) once, batched, with a progress bar, and caches them under a fingerprint of the weights and the set
(``<run cache>/foreign/<fingerprint>/eval/``, written like every evaluation result, ``lnlab.evaluate``).
Its label in figures and tables is the name you gave it (``config.label()``).

**Input convention.** By default the network receives float RGB images in [0, 1], N×3×32×32, as
torchvision's ``ToTensor`` makes them. A network trained on normalised inputs takes ``mean`` and
``std`` (3 numbers each): lnlab then feeds ``(x - mean) / std``, as ``Normalize(mean, std)`` after
``ToTensor`` does. Images of other sizes are resized to 32×32 by the data layer (``lnlab.data``).

**Loading a file** (:func:`load_module`): a TorchScript file (``torch.jit.save``); a ``state_dict``
saved with ``torch.save`` for one of lnlab's architectures (``arch="airnet"``, ``lnlab.models``) or
a torchvision classification architecture (``arch="resnet18"``, or ``"torchvision:resnet18"`` where
lnlab has a network of the same name), built with the training set's number of classes. Files are read
with ``torch.load(..., weights_only=True)``; a whole pickled module only with ``unsafe_pickle=True``,
because unpickling runs whatever code the file contains.

Bad input is refused with one line that says what to pass instead, before any long work
(:func:`check_network` runs the network on two test images first): an output width that is not the
training set's number of classes, a tuple or dict output (naming the element lnlab would need),
wrong input size or channels, NaN or infinite logits, an unreadable file, a pickle that
``weights_only`` refuses, a ``state_dict`` that does not fit the named architecture (its first
mismatched key).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import math
import os
import pickle
import re
import warnings
import zipfile
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from lnlab import evaluate
from lnlab.atomic import atomic_write, atomic_write_json
from lnlab.config import DEFAULT_OOD, LOSSES, TrainConfig, check_datasets
from lnlab.data import CIFAR_MEAN, CIFAR_STD, default_ood_for, display_name, is_registered
from lnlab.models import available_models, build_model
from lnlab.paths import runs_root as default_runs_root
from lnlab.splits import eval_set, training_subset
from lnlab.store import Run

__all__ = ["ForeignConfig", "ForeignRun", "UserNetwork", "adapt", "load_network", "load_module", "check_network",
           "evaluating", "export_torchscript", "input_normalisation", "device_of", "fingerprint", "InputAffine",
           "INPUT_CONVENTION", "FOREIGN_DIR"]

INPUT_CONVENTION = "float RGB images in [0, 1] of shape N×3×32×32 (torchvision's ToTensor)"
FOREIGN_DIR = "foreign"  # <run cache>/foreign/<fingerprint>/: the evaluation cache of networks lnlab did not train
_PROBE = 2  # test images the network sees before any long work
_TORCHVISION = "torchvision:"


# --------------------------------------------------------------------------- what a run's config answers


@dataclass(frozen=True)
class ForeignConfig:
    """What figures, tables and the data layer read from a run's config, for a network lnlab did not train.

    ``name`` is its label (``label()``); ``model`` says what it is (e.g. "TorchScript net.pt").
    ``dataset`` is its training set (its "test" split gives labels and accuracy); ``ood``,
    ``ood_limit`` (images per OOD set, a seeded subset), ``test_subset_per_class`` and
    ``norm_subset`` pick the evaluation images as for a :class:`lnlab.config.TrainConfig`.
    ``loss`` / ``tau``: how it was trained, if known (CE by default); figures that draw what the loss
    sees (paper Eq. 6-7) and the τ explorer read them. ``mean`` / ``std``: the input normalisation
    (module docstring); ``bf16``: logits computed under bf16 autocast (default float32). A field it
    does not have answers as ``TrainConfig``'s default (the data layer reads some).
    """

    name: str
    dataset: str = "cifar10"
    model: str = "your network"
    loss: str = "ce"
    tau: float = 0.04
    ood: tuple[str, ...] | None = None  # None: lnlab's default OOD sets that share nothing with ``dataset``
    ood_limit: int | None = None
    test_subset_per_class: int | None = None
    norm_subset: int = 1000
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    bf16: bool = False
    device: str = "cpu"
    seed: int | None = None
    epochs: int = 0
    data_root: str | None = field(default=None, compare=False)
    subset_per_class: None = None  # no images held out: "val" does not exist for it
    channels_last: bool = False

    def __post_init__(self) -> None:
        ood = default_ood_for(self.dataset, DEFAULT_OOD) if self.ood is None else self.ood
        ood = (ood,) if isinstance(ood, str) else ood
        object.__setattr__(self, "ood", tuple(str(n).lower() if is_registered(str(n)) else str(n) for n in ood))
        check_datasets(self.dataset, self.ood, self.data_root)  # the same refusals as a run's config
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; pass the loss the network was trained with, one of "
                             f"{list(LOSSES)} (default 'ce')")
        for name in ("ood_limit", "test_subset_per_class"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive number of images or None, got {value!r}")

    def __getattr__(self, name: str) -> Any:
        fields = TrainConfig.__dataclass_fields__
        if name.startswith("_") or name not in fields:
            raise AttributeError(name)
        default = fields[name].default
        return None if default is dataclasses.MISSING else default

    @property
    def amp(self) -> bool:
        return self.bf16

    def label(self) -> str:
        """The name the user gave the network: its label in figures and tables."""
        return self.name

    def recipe(self) -> str:
        """What a figure's subtitle says about it (``lnlab.plots.recipe_line``)."""
        return f"{self.name}: {self.model}, {display_name(self.dataset)}{', bf16 logits' if self.bf16 else ''}"

    def resolved_device(self) -> str:
        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device

    def canonical(self) -> dict[str, Any]:
        """What determines the logits besides the weights (part of :func:`fingerprint`)."""
        return {"mean": list(self.mean), "std": list(self.std), "amp": self.bf16,
                "device": torch.device(self.resolved_device()).type}

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def replace(self, **changes: Any) -> "ForeignConfig":
        return dataclasses.replace(self, **changes)


# --------------------------------------------------------------------------- the network, in lnlab's input


class InputAffine(nn.Module):
    """``model(x * scale + shift)`` with per-channel ``scale`` and ``shift``: a change of input convention."""

    def __init__(self, model: nn.Module, scale: Sequence[float], shift: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("shift", torch.tensor(shift, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> Any:
        return self.model(x * self.scale + self.shift)


class UserNetwork(nn.Module):
    """The user's network as lnlab's networks are: lnlab's input (``lnlab.data.Loader``: CIFAR-normalised
    images) in, one tensor of raw logits (N, k) out; anything else raises ValueError (one line)."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float], num_classes: int,
                 name: str, dataset: str, element: int | str | None) -> None:
        super().__init__()
        # x_lnlab = (x01 - CIFAR_MEAN) / CIFAR_STD  ->  x_user = (x01 - mean) / std
        scale = [c / s for c, s in zip(CIFAR_STD, std)]
        shift = [(c - m) / s for c, m, s in zip(CIFAR_MEAN, mean, std)]
        self.network = InputAffine(model, scale, shift)
        self.num_classes, self.name, self.dataset, self.element = num_classes, name, dataset, element

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.network(x)
        if self.element is not None and isinstance(out, (tuple, list, dict)):
            out = _element(out, self.element, self.name)
        if not isinstance(out, torch.Tensor):
            raise ValueError(_not_a_tensor(out, self.name, self.num_classes))
        if out.ndim != 2 or out.shape[1] != self.num_classes:
            width = out.shape[1] if out.ndim == 2 else f"a tensor of shape {tuple(out.shape)}, not (N, k)"
            raise ValueError(f"{self.name} returns {width} values per image, but the training set {self.dataset!r} "
                             f"has {self.num_classes} classes; pass the network trained on {self.dataset!r} (its "
                             "output: raw logits, one per class), or the set it was trained on (dataset= / --dataset)")
        bad = ~torch.isfinite(out.detach())
        if bool(bad.any()):
            raise ValueError(f"{self.name} returns NaN or infinite logits ({int(bad.sum())} of {out.numel()} values "
                             f"in a batch of {len(out)} images); check the weights (a diverged checkpoint?) and the "
                             f"input normalisation (mean= / std=, --mean / --std: lnlab feeds {INPUT_CONVENTION})")
        return out


def _element(out: Any, element: int | str, name: str) -> Any:
    try:
        return out[element]
    except (KeyError, IndexError, TypeError):
        keys = list(out) if isinstance(out, dict) else list(range(len(out)))
        raise ValueError(f"{name} returns a {type(out).__name__} without element {element!r}; pass element= one of "
                         f"{keys}") from None


def _not_a_tensor(out: Any, name: str, k: int) -> str:
    """One line: what the network returned, and which element lnlab would need (a tensor (N, k))."""
    if isinstance(out, dict):
        items = list(out.items())
    elif isinstance(out, (tuple, list)):
        items = list(enumerate(out))
    else:
        return (f"{name} returns a {type(out).__name__}, not a tensor; make forward return the raw logits, "
                f"one tensor (N, {k})")
    shapes = ", ".join(f"{key!r}: {tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__}"
                       for key, v in items)
    fits = [key for key, v in items if isinstance(v, torch.Tensor) and v.ndim == 2 and v.shape[1] == k]
    if fits:
        need = (f"element {fits[0]!r} has that shape: pass element={fits[0]!r} (--element {fits[0]}), or make "
                "forward return it alone")
    else:
        need = "no element has that shape: make forward return the raw logits alone"
    return (f"{name} returns a {type(out).__name__} ({shapes}); lnlab needs one tensor of raw logits (N, {k}): "
            f"{need}")


def check_network(network: nn.Module, images: torch.Tensor, name: str) -> None:
    """Run ``network`` (lnlab's input convention, :class:`UserNetwork`) on a few uint8 ``images``: ValueError
    (one line, what to pass) if it fails or returns anything but finite logits of the right width.
    The network's train/eval mode is left as it was."""
    x = evaluate.eval_loader(images[:_PROBE], device_of(network), False)
    try:
        with evaluating(network), torch.inference_mode():
            for batch, _ in x:
                network(batch)
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's network failed on lnlab's input
        raise ValueError(f"{name} fails on lnlab's input, {INPUT_CONVENTION} ({_first_line(exc)}); pass a network "
                         "that takes 3-channel 32×32 images (adapt its first layer or input size), with its "
                         "normalisation as mean= / std= (--mean / --std)") from None


@contextlib.contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in eval mode inside the block; afterwards every submodule is back in the mode it was in
    (a training loop's network stays as the loop left it, frozen parts included)."""
    modes = {sub: sub.training for sub in module.modules()}
    module.eval()
    try:
        yield module
    finally:
        for sub, training in modes.items():
            sub.training = training


def _first_line(exc: BaseException) -> str:
    """The informative line of an exception (TorchScript errors carry a traceback of the scripted code)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^\w*(Error|Exception)\b", line)]
    text = (errors[-1] if errors else lines[-1] if lines else "") or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if not text.startswith(type(exc).__name__) else text


def device_of(module: nn.Module) -> torch.device:
    """Where a module's weights are (CPU for one without any)."""
    parameter = next(module.parameters(), None)
    if parameter is None:
        parameter = next(module.buffers(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


# --------------------------------------------------------------------------- the run


@dataclass(repr=False, eq=False)
class ForeignRun(Run):
    """A network lnlab did not train, answering what a :class:`lnlab.store.Run` answers.

    ``logits_for(name)`` / ``labels_for(name)`` / ``labels`` / ``test_acc`` / ``model()`` as for a run
    (logits computed from the network once, cached under ``directory``, a progress bar while computing
    when ``progress``). ``history``: per-epoch records, empty unless recorded while training
    (:class:`lnlab.recorder.NormRecorder`). ``key`` is the fingerprint of its weights and input convention.
    """

    network: nn.Module | None = None
    progress: bool = True

    def model(self) -> nn.Module:
        """The network in lnlab's input convention (``lnlab.data.Loader``'s normalised images in, raw logits
        out), in eval mode."""
        return self.network.eval()

    def history_frame(self):
        if not self.history:
            raise ValueError(f"{self.config.name} has no per-epoch history: lnlab computes its logits from the "
                             "weights; record one while training with lnlab.recorder.NormRecorder")
        return super().history_frame()

    def __repr__(self) -> str:
        return (f"ForeignRun({self.config.name!r}, {self.config.model}, dataset={self.config.dataset!r}, "
                f"key={self.key!r}, epochs recorded={len(self.history)})")


def adapt(model: nn.Module, name: str = "your network", dataset: str | None = None,
          mean: Sequence[float] | None = None, std: Sequence[float] | None = None, *,
          element: int | str | None = None, loss: str = "ce", tau: float = 0.04, ood: Sequence[str] | None = None,
          limit: int | None = None, ood_limit: int | None = None, like: Any = None, bf16: bool = False,
          device: str | None = None, data_root: str | os.PathLike | None = None,
          runs_root: str | os.PathLike | None = None, progress: bool = True, history: Sequence[dict] | None = None,
          seed: int | None = None, description: str | None = None, copy: bool = True) -> ForeignRun:
    """Your classifier as a run (module docstring): pass it wherever lnlab takes a run.

    ``model`` takes :data:`INPUT_CONVENTION` (after ``(x - mean) / std`` when given) and returns raw
    logits, one per class of ``dataset`` (its training set, default CIFAR-10; a tuple or dict output
    needs ``element``, the index or key of the logits). The network is copied as it is now (its logits
    are cached under its fingerprint) and used in eval mode. ``limit``: at most this many test images
    (class-balanced, ``limit // k`` per class) and OOD images per set (a seeded subset); ``ood_limit``
    overrides it for the OOD sets. ``ood``: the OOD sets its tables and figures show by default.
    ``like``: a run whose images it is evaluated on (its dataset, test subset, OOD sets and their limit,
    data root; the arguments above override them), so that a table compares the two on the same
    images. ``bf16``: logits under bf16 autocast (default float32). ``device``: where it runs
    (default: where its weights are). ``loss`` / ``tau`` / ``seed``: how it was trained, if known
    (figures name the seed; the τ explorer and ``plot_effective_norm`` read the loss). ``history``:
    per-epoch records (:class:`lnlab.recorder.NormRecorder`). ``description``: what it is, for figure
    subtitles (default its class name). ``progress``: a progress bar while its logits are computed.
    ``copy=False`` uses ``model`` itself instead of a copy (it must not change afterwards).
    ValueError (one line) for a network lnlab cannot use.
    """
    mean, std = input_normalisation(mean, std)
    network = _copy(model) if copy else model
    device = device or str(device_of(network))
    root = data_root if data_root is not None or like is None else like.config.data_root
    root = None if root is None else str(root)
    base = like.config if like is not None else ForeignConfig(name="", dataset=dataset or "cifar10", data_root=root)
    config = ForeignConfig(name=str(name), dataset=str(dataset or base.dataset),
                           model=description or type(model).__name__, loss=loss, tau=float(tau),
                           ood=tuple(ood) if ood is not None else base.ood,
                           ood_limit=ood_limit or limit or base.ood_limit, mean=mean, std=std, bf16=bool(bf16),
                           device=device, seed=None if seed is None else int(seed), epochs=len(history or ()),
                           data_root=root,
                           test_subset_per_class=None if limit is not None else base.test_subset_per_class)
    classes = training_subset(config)[3]
    if limit is not None:
        config = config.replace(test_subset_per_class=max(1, int(limit) // len(classes)))
    target = torch.device(config.resolved_device())
    if target.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but no CUDA GPU is available here; pass device='cpu' or 'auto'")
    wrapped = UserNetwork(network, mean, std, len(classes), config.name, config.dataset, element).to(target)
    check_network(wrapped, eval_set(config, "test").images, config.name)
    key = fingerprint(network, config, element)
    directory = default_runs_root(runs_root) / FOREIGN_DIR / key
    _describe_folder(directory, config, key)
    first = history[0] if history else {}
    tracked = [c[len("norm_"):-len("_mean")] for c in first if c.startswith("norm_") and c.endswith("_mean")]
    return ForeignRun(config, key, directory, [dict(row) for row in history or ()], list(classes),
                      provenance={"device": config.resolved_device(), "source": config.model,
                                  "precision": "bf16-autocast" if bf16 else "float32"},
                      tracked=tracked, network=wrapped.eval(), progress=progress)


def _copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (a TorchScript module through its serialised form: ``copy.deepcopy`` of one gives
    parameters that are not leaf tensors)."""
    if isinstance(model, torch.jit.ScriptModule):
        buffer = io.BytesIO()
        with _quiet_jit():
            torch.jit.save(model, buffer)
            buffer.seek(0)
            return torch.jit.load(buffer, map_location=device_of(model))
    return deepcopy(model)


def input_normalisation(mean: Sequence[float] | None,
                        std: Sequence[float] | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) as 3 floats each (default 0 and 1: images in [0, 1] as they are); ValueError otherwise."""
    try:
        m = tuple(float(v) for v in (mean if mean is not None else (0.0, 0.0, 0.0)))
        s = tuple(float(v) for v in (std if std is not None else (1.0, 1.0, 1.0)))
    except (TypeError, ValueError):
        m, s = (), ()
    if len(m) != 3 or len(s) != 3 or not all(math.isfinite(v) for v in m + s) or min(s) <= 0:
        raise ValueError(f"mean and std take 3 numbers each (R, G, B; std > 0), the Normalize(mean, std) your network "
                         f"was trained with, e.g. --mean 0.4914 0.4822 0.4465 --std 0.247 0.243 0.261; "
                         f"got mean={mean}, std={std}")
    return m, s


def fingerprint(network: nn.Module, config: ForeignConfig, element: Any = None) -> str:
    """16 hex digits of the sha256 of the weights (names, dtypes, shapes, bytes), the network's code or
    structure, and what else changes its logits (input normalisation, precision, output element)."""
    digest = hashlib.sha256()
    code = getattr(network, "code", None)
    digest.update(json.dumps({**config.canonical(), "element": repr(element), "code": code if isinstance(code, str)
                              else f"{type(network).__qualname__}\n{network!r}"}, sort_keys=True).encode())
    for key, tensor in sorted(network.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def _describe_folder(directory: Path, config: ForeignConfig, key: str) -> None:
    """``network.json`` in the network's cache folder: what it is (for a person browsing the cache)."""
    try:
        atomic_write_json(directory / "network.json", {"key": key, "config": config.to_dict()})
    except OSError:  # a read-only cache: results stay in memory (lnlab.evaluate.cached_tensor)
        pass


# --------------------------------------------------------------------------- loading a file


def load_network(path: str | os.PathLike, arch: str | None = None, name: str | None = None,
                 dataset: str | None = None, *, width: int | None = None, unsafe_pickle: bool = False,
                 **options: Any) -> ForeignRun:
    """A model file as a run: :func:`load_module` (``arch``, ``width``, ``unsafe_pickle``), then :func:`adapt`
    (``name`` defaults to the file's stem; ``options``: mean, std, element, loss, tau, ood, limit, ood_limit,
    like, bf16, device, data_root, runs_root, progress)."""
    path = Path(path).expanduser()
    like = options.get("like")
    dataset = dataset or (like.config.dataset if like is not None else "cifar10")
    root = options.get("data_root", like.config.data_root if like is not None else None)
    config = ForeignConfig(name=name or path.stem, dataset=dataset, data_root=None if root is None else str(root))
    classes = training_subset(config)[3]  # the training set exists, and its number of classes, before loading
    module = load_module(path, arch=arch, num_classes=len(classes), width=width, unsafe_pickle=unsafe_pickle)
    kind = "TorchScript" if isinstance(module, torch.jit.ScriptModule) else (arch or type(module).__name__)
    return adapt(module, name or path.stem, dataset, description=f"{kind} {path.name}", copy=False, **options)


def load_module(path: str | os.PathLike, arch: str | None = None, num_classes: int = 10, width: int | None = None,
                unsafe_pickle: bool = False) -> nn.Module:
    """The network in a file, on CPU (module docstring, "Loading a file").

    ``arch`` names the architecture of a ``state_dict``: one of ``lnlab.models.available_models()``
    (``width``: its size knob, default the model's), or a torchvision classification model
    (``"resnet18"``; ``"torchvision:resnet18"`` where lnlab has the same name); built with
    ``num_classes`` outputs. ``unsafe_pickle=True`` loads a whole pickled ``nn.Module`` with
    ``torch.load(weights_only=False)``: **unsafe**, unpickling runs arbitrary code from the file, so
    use it only for a file you made or trust. ValueError / FileNotFoundError (one line) otherwise.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no model file {path}; pass the path of a TorchScript file (torch.jit.save) or "
                                "of a state_dict saved with torch.save")
    if _is_torchscript(path):
        if arch is not None:
            raise ValueError(f"{path} is a TorchScript file, which holds its architecture; drop arch= (--arch {arch})")
        try:
            with _quiet_jit():
                return torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:  # noqa: BLE001 - a corrupt archive
            raise ValueError(f"cannot load the TorchScript file {path} ({_first_line(exc)}); save it again with "
                             "torch.jit.save(torch.jit.script(model), path)") from None
    if unsafe_pickle:
        module = torch.load(path, map_location="cpu", weights_only=False)  # the caller opted in (docstring)
        if not isinstance(module, nn.Module):
            raise ValueError(f"{path} holds a {type(module).__name__}, not a pickled nn.Module; without "
                             "unsafe_pickle, pass a state_dict with arch= (--arch) or a TorchScript file")
        return module
    state = _read_weights(path)
    if arch is None:
        raise ValueError(f"{path} holds a state_dict ({len(state)} tensors, first key {next(iter(state), None)!r}) "
                         f"but no architecture; pass arch= (--arch) one of lnlab's {available_models()} or a "
                         "torchvision classification model (e.g. resnet18)")
    model = _build(arch, num_classes, width)
    mismatch = _first_mismatch(model.state_dict(), state)
    if mismatch:
        raise ValueError(f"the state_dict in {path} does not fit {arch} with {num_classes} classes: first mismatched "
                         f"key {mismatch}; pass the architecture it was saved from (--arch), its width, or the "
                         "training set it was trained on (--dataset)")
    model.load_state_dict(state)
    return model.eval()


def _is_torchscript(path: Path) -> bool:
    """A TorchScript archive holds code (``*/code/``) and ``constants.pkl``; a torch.save archive does not."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in archive.namelist())


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A state_dict from ``torch.load(weights_only=True)``; a checkpoint holding one under "state_dict",
    "model_state_dict", "model" or "net" gives that one; a "module." prefix (DataParallel) is dropped."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        refused_global = "GLOBAL" in str(exc)  # a torch.save file naming a class or function weights_only refuses
        with open(path, "rb") as handle:
            pickled = handle.read(1) == b"\x80"  # a plain pickle (protocol 2+): may hold any object
        if not refused_global and not pickled and not zipfile.is_zipfile(path):  # neither: not a model file at all
            raise ValueError(f"cannot load {path}: not a TorchScript file nor a torch.save file (it is neither a zip "
                             "archive nor a pickle); pass a TorchScript file (torch.jit.save) or a state_dict saved "
                             "with torch.save") from None
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        refused = (f"it holds {found.group(1)}, which is not a tensor" if found else
                   "a plain pickle, not torch.save's zip format of tensors")
        raise ValueError(f"{path} holds pickled Python objects that torch.load(weights_only=True) refuses "
                         f"({refused}); save model.state_dict() and pass arch= (--arch), or save "
                         "TorchScript (torch.jit.save(torch.jit.script(model), path)); only for a file you trust: "
                         "unsafe_pickle=True (--unsafe-pickle), which runs any code the file contains") from None
    except Exception as exc:  # noqa: BLE001 - not a torch file at all
        raise ValueError(f"cannot load {path}: not a TorchScript file nor a torch.save file ({_first_line(exc)}); "
                         "pass a TorchScript file (torch.jit.save) or a state_dict saved with torch.save") from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model", "net"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        kind = type(obj).__name__ if not isinstance(obj, dict) else "dict that is not a state_dict (non-tensor values)"
        raise ValueError(f"{path} holds a {kind}; pass a state_dict (torch.save(model.state_dict(), path)) with arch=, "
                         "or a TorchScript file")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def _build(arch: str, num_classes: int, width: int | None) -> nn.Module:
    """lnlab's network ``arch``, else torchvision's (``torchvision:NAME`` forces torchvision), untrained."""
    if arch in available_models():
        return build_model(arch, num_classes, width=width)
    import torchvision

    name = arch[len(_TORCHVISION):] if arch.startswith(_TORCHVISION) else arch
    known = torchvision.models.list_models(module=torchvision.models)
    if name not in known:
        raise ValueError(f"unknown architecture {arch!r}; pass one of lnlab's {available_models()} or a torchvision "
                         f"classification model (e.g. {', '.join(n for n in known if n.startswith('resnet'))})")
    if width is not None:
        raise ValueError(f"width= applies to lnlab's networks, not torchvision's {name!r}; drop it")
    return torchvision.models.get_model(name, weights=None, num_classes=num_classes)


def _first_mismatch(expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor]) -> str | None:
    """The first key (in the architecture's order) the file lacks or has with another shape, else the first
    key the architecture lacks; None if the two fit."""
    for key, tensor in expected.items():
        if key not in given:
            return f"{key!r} (missing from the file)"
        if tuple(given[key].shape) != tuple(tensor.shape):
            return f"{key!r} (file {list(given[key].shape)}, architecture {list(tensor.shape)})"
    extra = [key for key in given if key not in expected]
    return f"{extra[0]!r} (in the file, not in the architecture)" if extra else None


# --------------------------------------------------------------------------- writing a file


def export_torchscript(source: Any, path: str | os.PathLike, mean: Sequence[float] = CIFAR_MEAN,
                       std: Sequence[float] = CIFAR_STD) -> Path:
    """Write a network as a TorchScript file that takes :data:`INPUT_CONVENTION` (written atomically).

    ``source``: a run with weights (``run.model()``: lnlab's networks take images normalised with
    ``mean`` / ``std``, the CIFAR statistics) or an ``nn.Module`` taking such images; the file holds
    the normalisation, so it is loaded without ``mean`` / ``std``, as a file from elsewhere would be.
    Traced on a 32×32 batch (``torch.jit.trace``); returns the path.
    """
    model = source.model() if hasattr(source, "model") and callable(source.model) else source
    mean, std = input_normalisation(mean, std)
    net = InputAffine(model, [1 / s for s in std], [-m / s for m, s in zip(mean, std)]).eval()
    example = torch.rand(_PROBE, 3, 32, 32, device=device_of(net))
    with torch.no_grad(), _quiet_jit():
        traced = torch.jit.trace(net, example)
        return atomic_write(Path(path).expanduser(), lambda handle: torch.jit.save(traced, handle))


@contextlib.contextmanager
def _quiet_jit() -> Iterator[None]:
    """TorchScript is what many released checkpoints are; torch >= 2.9 warns on every use that it is deprecated
    (in favour of torch.export), and tracing warns about ``.grad`` of non-leaf tensors it never reads."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.* is deprecated", category=FutureWarning)
        warnings.filterwarnings("ignore", message=r"The \.grad attribute of a Tensor that is not a leaf",
                                category=UserWarning)
        yield
