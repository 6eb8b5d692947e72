"""The logit-norm record of a training loop lnlab does not own (paper Sec. 3, Fig. 1-2).

lnlab's trainer records, after every epoch, the raw logit norm ‖f(x)‖₂ (mean, median, 10th and
90th percentile) of fixed sets of images and the test accuracy (``lnlab.train``). A
:class:`NormRecorder` records the same, in the same history format, from a plain PyTorch loop::

    recorder = NormRecorder(model, sets=["train", "test", "textures"], size=1000)
    for epoch in range(1, epochs + 1):
        ...                                   # your training epoch
        recorder(epoch, train_loss=loss)      # once per epoch: one row of history
    plots.plot_norm_vs_epoch({"my net": recorder.run()})

Each row has ``epoch``, the values you pass (``train_loss``, ``lr``, …), ``test_acc`` (on the
recorded test images), ``norm_<set>_<stat>`` for every set and stat of ``lnlab.evaluate.norm_stats``,
``seen_<set>_<stat>`` for the train and test sets (the norm of the logits the given loss's softmax sees: 1/τ for
LogitNorm, paper Eq. 7; ``f / s(x)`` for ELogitNorm, from the network's last linear layer; the raw norm otherwise,
as lnlab's trainer records it), and ``seconds`` (wall time since the previous call, the epoch's time as in lnlab's
history); ``lnlab.plots.plot_effective_norm`` draws the seen norm beside the raw one. :meth:`NormRecorder.run`
is the network with its history as a run (``lnlab.foreign.ForeignRun``): ``plot_norm_vs_epoch``,
``plot_runs_norm_vs_epoch`` (notebook 01's figure), ``norm_table`` and the τ explorer draw it unchanged.

The network sees lnlab's input convention (``lnlab.foreign.INPUT_CONVENTION``, ``mean`` / ``std`` in
front), in eval mode and without gradients; its train/eval mode is restored after each call.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from lnlab.evaluate import eval_loader, norm_stats, predict
from lnlab.foreign import (ForeignConfig, ForeignRun, UserNetwork, adapt, check_network, device_of, evaluating,
                           input_normalisation)
from lnlab.precision import use_bf16
from lnlab.splits import eval_set, training_subset

__all__ = ["NormRecorder"]

SetSpec = str | torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]


class NormRecorder:
    """Per-epoch logit-norm statistics and accuracy of ``model`` on small fixed subsets of ``sets``.

    ``sets``: names (``"train"``: un-augmented images of ``dataset``'s training split, ``"test"``: its
    test split, an OOD set, pack, folder or path, as ``lnlab.splits.eval_set`` reads them) or a mapping
    ``{name: images}`` where images are a uint8 tensor (N, 3, H, W), a float one in [0, 1] (ToTensor's
    output), or ``(images, labels)`` (e.g. the subset your loop trains on as ``"train"``). ``size``:
    images per set (the first ``size`` of each: test class-balanced, OOD sets a seeded subset; the
    trainer's ``norm_subset`` is 1000). ``mean`` / ``std``: the normalisation your network expects.
    ``name``, ``loss``, ``tau``: how figures label it and what its loss sees. ``bf16``: autocast.
    A network lnlab cannot use (wrong width, tuple output, wrong input size, NaN logits) is refused at
    construction with one line (``lnlab.foreign.check_network``).
    """

    def __init__(self, model: nn.Module, sets: Sequence[str] | Mapping[str, SetSpec] = ("train", "test"),
                 dataset: str = "cifar10", size: int = 1000, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, name: str = "your network", loss: str = "ce", tau: float = 0.04,
                 bf16: bool = False, element: int | str | None = None, data_root: str | os.PathLike | None = None,
                 seed: int | None = None) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive number of images per set (e.g. 1000), got {size!r}")
        specs = dict(sets) if isinstance(sets, Mapping) else {str(n): str(n) for n in sets}
        if not specs:
            raise ValueError("pass at least one set, e.g. sets=['train', 'test']")
        self.mean, self.std = input_normalisation(mean, std)
        oods = tuple(spec for spec in specs.values() if isinstance(spec, str) and spec not in ("train", "test"))
        probe = ForeignConfig(name=name, dataset=dataset, loss=loss, tau=float(tau), ood=oods, ood_limit=size,
                              norm_subset=size, data_root=None if data_root is None else str(data_root))
        classes = training_subset(probe)[3]
        self.config = probe.replace(test_subset_per_class=max(1, size // len(classes)), mean=self.mean,
                                    std=self.std, bf16=bool(bf16), seed=None if seed is None else int(seed))
        self.classes = classes
        self.images: dict[str, torch.Tensor] = {}
        self.labels: dict[str, torch.Tensor | None] = {}
        for set_name, spec in specs.items():
            self.images[set_name], self.labels[set_name] = self._images(set_name, spec, size)
        self.model, self.element = model, element
        self.network = UserNetwork(model, self.mean, self.std, len(classes), name, dataset, element)
        check_network(self.network.to(device_of(model)), next(iter(self.images.values())), name)
        self.history: list[dict[str, Any]] = []
        self.cost: list[float] = []  # seconds each call spent recording (benchmarks/recorder_cost.py)
        self._loaders: dict[tuple[str, str], Any] = {}
        self._last = time.perf_counter()

    def _images(self, name: str, spec: SetSpec, size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The fixed images (uint8) and labels (None for OOD sets) of one set."""
        if isinstance(spec, str):
            data = eval_set(self.config, spec)
            return data.images[:size], None if data.labels is None else data.labels[:size]
        images, labels = spec if isinstance(spec, (tuple, list)) else (spec, None)
        images = torch.as_tensor(images)
        if images.is_floating_point():
            if images.numel() and (float(images.min()) < 0 or float(images.max()) > 1):
                raise ValueError(f"set {name!r}: float images must be in [0, 1] (ToTensor's output, before "
                                 "normalisation); pass those, or uint8 images")
            images = images.mul(255).round().to(torch.uint8)
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"set {name!r}: pass images (N, 3, H, W), uint8 or float in [0, 1]; got "
                             f"{images.dtype} {tuple(images.shape)}")
        labels = None if labels is None else torch.as_tensor(labels, dtype=torch.int64)[:size].cpu()
        return images[:size].cpu(), labels

    def __call__(self, epoch: int | None = None, **values: Any) -> dict[str, Any]:
        """Record one epoch (default: the next number) and return its row; ``values`` (``train_loss``,
        ``train_acc``, ``lr``, …) are stored in the row as given."""
        start = time.perf_counter()
        device = device_of(self.model)
        self.network.to(device)
        bf16 = use_bf16(self.config.bf16, device)
        with evaluating(self.network):
            logits = {name: predict(self.network, self._loader(name, device), bf16) for name in self.images}
        row: dict[str, Any] = {"epoch": int(epoch) if epoch is not None else len(self.history) + 1,
                               **{k: _plain(v) for k, v in values.items()}}
        if self.labels.get("test") is not None:
            row["test_acc"] = float((logits["test"].argmax(1) == self.labels["test"]).float().mean())
        for name, out in logits.items():
            row.update({f"norm_{name}_{stat}": value for stat, value in norm_stats(out).items()})
        row.update(self._seen(logits))
        now = time.perf_counter()
        row["seconds"] = now - self._last
        self._last = now
        self.cost.append(now - start)
        self.history.append(row)
        return row

    @torch.no_grad()
    def _seen(self, logits: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """``seen_<set>_<stat>`` of the train and test sets, as lnlab's trainer records them: the norm of the
        logits the loss's softmax sees (``lnlab.losses.TrainingLoss.seen_logits``; ELogitNorm reads the head)."""
        from lnlab.losses import training_loss
        from lnlab.models import classifier_head

        loss = training_loss(self.config.loss, tau=self.config.tau)
        head = classifier_head(self.model) if loss.needs_head else None
        return {f"seen_{name}_{stat}": value for name in ("train", "test") if name in logits
                for stat, value in norm_stats(loss.seen_logits(logits[name].clone(), head)).items()}

    def _loader(self, name: str, device: torch.device) -> Any:
        key = (name, str(device))
        if key not in self._loaders:
            self._loaders[key] = eval_loader(self.images[name], device, False)
        return self._loaders[key]

    def run(self, runs_root: str | os.PathLike | None = None, **options: Any) -> ForeignRun:
        """The network as it is now, with the history recorded so far, as a run (``lnlab.foreign.adapt``;
        ``options``: ood, limit, progress, …). Its test set and OOD sets default to the recorded subsets."""
        config = self.config
        options.setdefault("ood", config.ood)
        options.setdefault("ood_limit", config.ood_limit)
        options.setdefault("limit", config.test_subset_per_class * len(self.classes))
        options.setdefault("description", f"{type(self.model).__name__}, {len(self.history)} epochs recorded")
        return adapt(self.model, config.name, config.dataset, self.mean, self.std, element=self.element,
                     loss=config.loss, tau=config.tau, bf16=config.bf16, data_root=config.data_root,
                     runs_root=runs_root, history=self.history, seed=config.seed, **options)


def _plain(value: Any) -> Any:
    """A number from a tensor (``loss.item()`` forgotten), as JSON and pandas want it."""
    return value.item() if isinstance(value, torch.Tensor) and value.numel() == 1 else value
