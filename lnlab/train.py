"""One readable training loop that records the logit norm every epoch (paper Sec. 3, Fig. 1).

``train(config)`` trains ``config.model`` on ``config.dataset`` with the loss ``config.loss`` (cross-entropy,
LogitNorm, paper Eq. 7, or a control of ``lnlab.losses.TRAINING_LOSSES``; every loss is called the same way,
with the classifier head), and after every epoch evaluates the raw logit norm ||f(x)||_2 on a
fixed un-augmented training subset, the test set and a fixed family of OOD and validation sets
(``lnlab.splits.tracked_sets``: the same whoever asks first). It returns the history, the final raw
logits of every tracked set (so any post-hoc score can be computed later without the model), the
logits of the test and OOD sets at a few epochs along training (``SNAPSHOT_FRACTIONS``: how
overconfidence develops) and the final weights.

Per-epoch norm statistics use the first ``norm_subset`` images of each set (the whole test set for
accuracy); at snapshot epochs every set is evaluated whole.

Recipe (official LogitNorm code): SGD, lr 0.1, momentum 0.9, weight decay 5e-4, batch 128,
lr / 10 after 40% and 70% of the epochs; here the schedule is applied per step with an optional
linear warm-up. bf16 autocast on a GPU and on a CPU with native bf16 (``lnlab.precision``; float32
elsewhere, with one log line), channels_last, cudnn benchmark on CUDA, optional torch.compile.

Determinism: the model is initialised from ``torch.manual_seed(seed)``; epoch ``e`` re-seeds the
global RNG (dropout) from ``(seed, e)`` and the loader's order/augmentation is a pure function of
``(seed, e)``. Epoch ``e`` is thus a function of the state at its start, so a resumed run equals
an uninterrupted one (exactly, on CPU).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from lnlab.checkpoint import load_checkpoint, save_checkpoint
from lnlab.config import TrainConfig
from lnlab.data import Loader
from lnlab.evaluate import eval_loader, norm_stats, predict
from lnlab.losses import TrainingLoss
from lnlab.models import build_for, classifier_head
from lnlab.precision import autocast, precision_name, use_bf16
from lnlab.splits import VALIDATION_OOD_SETS, load_train_data

__all__ = ["TrainConfig", "TrainResult", "TrainingDivergedError", "train", "make_model"]

Callback = Callable[[int, dict], None]
# Epochs (fractions of training, rounded, at least 1) at which the test and OOD logits are kept.
SNAPSHOT_FRACTIONS = (0.1, 0.25, 0.5, 1.0)


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or inf; the last good checkpoint (if any) is left in place."""


@dataclass
class TrainResult:
    """What ``train`` returns: per-epoch history, final raw logits, test labels, final weights,
    the logits at snapshot epochs, the sets tracked and the precision used."""

    history: list[dict]
    logits: dict[str, torch.Tensor]  # every tracked set but "train", float32 raw logits
    labels: torch.Tensor  # labels of the (subset of the) ID test set
    state_dict: dict[str, torch.Tensor]
    classes: list[str]
    snapshots: dict[int, dict[str, torch.Tensor]]  # epoch -> {"test"/OOD set: float16 logits}, final epoch excluded
    tracked: list[str]
    precision: str


def snapshot_epochs(epochs: int) -> list[int]:
    """The epochs whose test and OOD logits a run keeps (``SNAPSHOT_FRACTIONS`` of ``epochs``)."""
    return sorted({max(1, round(f * epochs)) for f in SNAPSHOT_FRACTIONS})


def snapshot_sets(tracked: Iterable[str]) -> list[str]:
    """The sets kept at snapshot epochs: the test set and the OOD sets (not the validation sets)."""
    return [n for n in tracked if n not in ("train", "val", *VALIDATION_OOD_SETS)]


make_model = build_for  # the network of a config, initialised from its seed (lnlab.models.build_for)


def train(config: TrainConfig, checkpoint_path=None, progress: bool = True,
          callbacks: Iterable[Callback] = ()) -> TrainResult:
    """Train (or resume from ``checkpoint_path``) and return a :class:`TrainResult`.

    A checkpoint is written after every completed epoch, then each ``callback(epoch, row)`` is
    called. A NaN/inf loss raises :class:`TrainingDivergedError`.
    """
    config.validate()
    device = _device(config)
    bf16 = use_bf16(config.amp, device)
    data = load_train_data(config)  # fails here, before any work, if a set is missing

    # ---- model, optimizer, per-step lr schedule -------------------------------------------
    model = make_model(config, data.num_classes).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    loader = Loader(data.train_images, data.train_labels, config.batch_size, shuffle=True,
                    augment=config.augment, device=device, seed=config.seed, drop_last=True,
                    channels_last=config.channels_last)
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise ValueError(f"batch_size={config.batch_size} exceeds the {loader.num_samples} training images; "
                         "pass a smaller batch_size or a larger subset_per_class")
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay, nesterov=config.nesterov)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config, steps_per_epoch))
    forward = torch.compile(model) if config.compile else model
    criterion = config.loss_module()
    tracked = list(data.eval_images)
    full = {name: eval_loader(x, device, config.channels_last) for name, x in data.eval_images.items()}
    per_epoch = {name: full[name] if name == "test" else eval_loader(x[:config.norm_subset], device, config.channels_last)
                 for name, x in data.eval_images.items()}
    keep_at = snapshot_epochs(config.epochs)

    # ---- resume ----------------------------------------------------------------------------
    history: list[dict] = []
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    state = load_checkpoint(checkpoint_path, config.key())
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history = list(state["history"])
        snapshots = dict(state.get("snapshots", {}))

    # ---- epochs ----------------------------------------------------------------------------
    logits: dict[str, torch.Tensor] = {}
    bar = tqdm(total=config.epochs, initial=len(history), desc=f"{config.label()} {config.model}",
               unit="epoch", disable=not progress)
    for epoch in range(len(history) + 1, config.epochs + 1):
        start = time.perf_counter()
        torch.manual_seed(epoch_seed(config.seed, epoch))  # dropout etc.: a pure function of (seed, epoch)
        loader.set_epoch(epoch)
        lr = optimizer.param_groups[0]["lr"]
        train_loss, train_acc = train_epoch(forward, loader, optimizer, scheduler, criterion, config, epoch, progress,
                                            bf16)
        whole = epoch in keep_at
        logits = {name: predict(model, ld, bf16) for name, ld in (full if whole else per_epoch).items()}
        row = {"epoch": epoch, "lr": lr, "train_loss": train_loss, "train_acc": train_acc,
               **test_metrics(logits["test"], data.test_labels, criterion, model),
               **{f"norm_{name}_{stat}": value for name, out in logits.items()
                  for stat, value in norm_stats(out if name == "test" else out[:config.norm_subset]).items()},
               **seen_norms(logits, criterion, model, config.norm_subset),
               "seconds": time.perf_counter() - start}
        history.append(row)
        if whole and epoch < config.epochs:
            snapshots[epoch] = {name: logits[name].half() for name in snapshot_sets(tracked)}
        if checkpoint_path is not None:
            save_checkpoint(checkpoint_path, config.key(), epoch, model, optimizer, scheduler, history,
                            snapshots=snapshots)
        bar.update(1)
        bar.set_postfix(loss=f"{train_loss:.3f}", acc=f"{row['test_acc']:.3f}", norm=f"{row['norm_train_mean']:.1f}")
        for callback in callbacks:
            callback(epoch, row)
    bar.close()

    if set(logits) != set(full):
        logits = {name: predict(model, ld, bf16) for name, ld in full.items()}  # resumed after the last epoch
    logits.pop("train")
    state_dict = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return TrainResult(history, logits, data.test_labels.clone(), state_dict, data.classes, snapshots, tracked,
                       precision_name(config.amp, device))


def train_epoch(model: nn.Module, loader: Loader, optimizer: torch.optim.Optimizer, scheduler,
                criterion: TrainingLoss, config: TrainConfig, epoch: int, progress: bool,
                bf16: bool) -> tuple[float, float]:
    """One pass over ``loader``; returns (mean train loss, train accuracy) on the augmented batches.
    ``criterion(logits, targets, head)``: the training loss (``config.loss_module()``), in float32;
    ``bf16``: autocast the forward pass (``lnlab.precision.use_bf16``).

    Losses stay on the device (no per-step host sync); a non-finite loss is reported after the
    pass, naming the first bad step.
    """
    model.train()
    head = classifier_head(model)
    device = next(model.parameters()).device
    losses = torch.zeros(len(loader), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for step, (x, y) in enumerate(tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=not progress)):
        with autocast(device, bf16):
            out = model(x)
        loss = criterion(out, y, head)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses[step] = loss.detach()
        correct += (out.argmax(1) == y).sum()
        seen += y.numel()
    finite = torch.isfinite(losses)
    if not bool(finite.all()):
        raise_diverged(config, epoch, int((~finite).nonzero()[0]) + 1, len(loader))
    return float(losses.mean()), int(correct) / seen


@torch.no_grad()
def test_metrics(logits: torch.Tensor, labels: torch.Tensor, criterion: TrainingLoss, model: nn.Module) -> dict[str, float]:
    """Test loss (the training objective, so it compares with ``train_loss``) and accuracy."""
    loss = criterion(logits, labels, classifier_head(model))
    return {"test_loss": float(loss), "test_acc": float((logits.argmax(1) == labels).float().mean())}


@torch.no_grad()
def seen_norms(logits: dict[str, torch.Tensor], criterion: TrainingLoss, model: nn.Module,
               norm_subset: int) -> dict[str, float]:
    """Norm statistics of the logits the loss's softmax sees (``TrainingLoss.seen_logits``: LogitNorm's
    ``f / (τ‖f‖)``, ELogitNorm's ``f / s(x)``, the raw ``f`` for the others) on the training and test sets:
    ``seen_<set>_<stat>`` (not ``norm_…``: those name the tracked sets)."""
    head = classifier_head(model)
    return {f"seen_{name}_{stat}": value for name in ("train", "test") if name in logits
            for stat, value in norm_stats(criterion.seen_logits(logits[name][:norm_subset] if name == "train"
                                                                else logits[name], head)).items()}


def lr_factor(config: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """Multiplier of ``config.lr`` at optimizer step ``step`` (0-based), for ``LambdaLR``.

    Linear warm-up over ``warmup_epochs``, then "step": × ``gamma`` after epoch
    ``max(1, round(m * epochs))`` for each milestone fraction m
    (MultiStepLR semantics: 0.4 and 0.7 of 200 epochs = after epochs 80 and 140), "cosine": half a
    cosine from 1 to 0 over training, or "linear": a straight line from 1 after the warm-up to 0 at the end.
    """
    warmup = config.warmup_epochs * steps_per_epoch
    total = config.epochs * steps_per_epoch
    boundaries = [max(1, round(m * config.epochs)) * steps_per_epoch for m in config.milestones]

    def factor(step: int) -> float:
        if step < warmup:
            scale = (step + 1) / warmup
        else:
            scale = 1.0
        if config.schedule == "cosine":
            return scale * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
        if config.schedule == "linear":
            return scale * max(0.0, 1 - max(0, step - warmup) / max(1, total - warmup))
        return scale * config.gamma ** sum(step >= b for b in boundaries)

    return factor


def epoch_seed(seed: int, epoch: int) -> int:
    """The global-RNG seed of epoch ``epoch``: a pure function of (seed, epoch)."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), 1]).generate_state(1)[0])


def raise_diverged(config: TrainConfig, epoch: int, step: int, steps: int) -> None:
    fix = "lower lr (e.g. lr=0.01) or add warm-up (e.g. warmup_epochs=1)"
    if config.loss == "logitnorm":
        fix += f"; for LogitNorm check tau ({config.tau:g}; the paper uses 0.04 on CIFAR-10)"
    elif config.loss_parameter() is not None:
        fix += f"; check the loss's hyperparameter ({config.label()})"
    raise TrainingDivergedError(
        f"training diverged: non-finite loss at epoch {epoch}, step {step}/{steps} (lr={config.lr:g}); "
        f"{fix}. The last good epoch's checkpoint is kept.")


def _device(config: TrainConfig) -> torch.device:
    device = torch.device(config.resolved_device())
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device='cuda' but no CUDA GPU is available; pass device='cpu' or 'auto'")
        torch.backends.cudnn.benchmark = True
    return device
