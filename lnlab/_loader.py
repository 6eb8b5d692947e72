"""Device-resident batch loader with tensor-op augmentation (public names live in ``lnlab.data``).

The whole split stays on the device as one uint8 tensor (airbench style); each batch is a
gather, an optional pad-crop-flip done as *one* batched index operation, and a fused
normalization. No PIL, no worker processes, no per-sample Python.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

# The official LogitNorm code (hongxin001/logitnorm_ood, train.py) normalizes with
# mean = [x / 255 for x in [125.3, 123.0, 113.9]], std = [x / 255 for x in [63.0, 62.1, 66.7]].
CIFAR_MEAN: tuple[float, float, float] = (125.3 / 255, 123.0 / 255, 113.9 / 255)
CIFAR_STD: tuple[float, float, float] = (63.0 / 255, 62.1 / 255, 66.7 / 255)

PAD = 4  # torchvision RandomCrop(32, padding=4): zero padding, offsets uniform in 0..8


def normalize(
    images: torch.Tensor,
    mean: Sequence[float] = CIFAR_MEAN,
    std: Sequence[float] = CIFAR_STD,
) -> torch.Tensor:
    """uint8 images (N, 3, H, W) in 0..255 -> float32 ``(x / 255 - mean) / std``.

    Equals torchvision's ``ToTensor()`` followed by ``Normalize(mean, std)``; use it for
    evaluation on un-augmented data (e.g. computing logits on an OOD set).
    """
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"normalize expects uint8 images of shape (N, 3, H, W); got {images.dtype} {tuple(images.shape)}"
        )
    scale, shift = _affine(mean, std, images.device)
    return images.float().mul_(scale).add_(shift)


def _affine(mean: Sequence[float], std: Sequence[float], device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """(x/255 - m)/s == x * scale + shift with scale = 1/(255 s), shift = -m/s."""
    m = torch.as_tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    if m.numel() != 3 or s.numel() != 3 or bool((s <= 0).any()):
        raise ValueError(f"mean and std need 3 values each, std > 0; got mean={mean}, std={std}")
    return 1.0 / (255.0 * s), -m / s


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """A CPU generator whose random stream is a pure function of ``(seed, epoch, stream)``.

    ``stream`` separates independent uses of one seed (0: epoch order/augmentation, 1: subsetting).
    """
    words = [int(seed) & 0xFFFFFFFF, int(seed) >> 32 & 0xFFFFFFFF, int(stream), int(epoch)]
    state = np.random.SeedSequence(words).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def crop_flip(images: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Random crop with 4-pixel zero padding + horizontal flip, for a whole batch in one gather.

    ``dy``, ``dx`` in 0..8 are the crop offsets in the padded image, ``flip`` a bool per sample.
    Same distribution as torchvision ``RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip()``.
    """
    b, c, h, w = images.shape
    padded = F.pad(images, (PAD, PAD, PAD, PAD))
    ph, pw = h + 2 * PAD, w + 2 * PAD
    dev = images.device
    ar_h, ar_w = torch.arange(h, device=dev), torch.arange(w, device=dev)
    rows = dy.view(b, 1) + ar_h  # (b, h)
    cols = torch.where(flip.view(b, 1), dx.view(b, 1) + (w - 1 - ar_w), dx.view(b, 1) + ar_w)  # (b, w)
    plane = torch.arange(b * c, device=dev).view(b, c, 1, 1)  # index of each (sample, channel) plane
    flat = (plane * ph + rows.view(b, 1, h, 1)) * pw + cols.view(b, 1, 1, w)
    return padded.reshape(-1)[flat.reshape(-1)].view(b, c, h, w)


class Loader:
    """Batches of normalized float images (and int64 labels) from a split kept on ``device``.

    Iterating yields ``(images, labels)`` with images float32 ``(B, 3, 32, 32)`` normalized by
    ``mean``/``std`` and labels int64 ``(B,)`` — or ``None`` when the set is unlabeled (OOD).
    ``augment=True`` applies the training augmentation of the paper's recipe (random crop with
    4-pixel zero padding + horizontal flip, as the official code's torchvision transforms).

    Determinism: the order and augmentation of epoch ``e`` are a pure function of
    ``(seed, e)`` (random numbers come from a CPU generator, so CPU and GPU see the same
    batches). The epoch starts at 0 and advances by one after each *complete* iteration;
    ``set_epoch(e)`` sets it explicitly (use it when resuming at epoch ``e``).

    ``subset_per_class=n`` keeps n images per class, chosen by a permutation seeded with
    ``seed`` (independent of the epoch), in their original order.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor | None = None,
        batch_size: int = 128,
        shuffle: bool = False,
        augment: bool = False,
        device: str | torch.device = "cpu",
        seed: int = 0,
        mean: Sequence[float] = CIFAR_MEAN,
        std: Sequence[float] = CIFAR_STD,
        subset_per_class: int | None = None,
        drop_last: bool = False,
        channels_last: bool = False,
    ) -> None:
        if hasattr(images, "images") and hasattr(images, "labels"):  # an ImageSet
            images, labels = images.images, (images.labels if labels is None else labels)
        images, labels = _validate(images, labels, batch_size)
        if subset_per_class is not None:
            keep = balanced_subset(labels, subset_per_class, seed)
            images, labels = images[keep], labels[keep]
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = None if labels is None else labels.to(self.device)
        self.batch_size, self.shuffle, self.augment = int(batch_size), bool(shuffle), bool(augment)
        self.seed, self.drop_last, self.channels_last = int(seed), bool(drop_last), bool(channels_last)
        self.epoch = 0
        self._scale, self._shift = _affine(mean, std, self.device)

    @property
    def num_samples(self) -> int:
        return int(self.images.shape[0])

    def __len__(self) -> int:
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else math.ceil(n / b)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration produce epoch ``epoch``'s batches (0-based)."""
        if int(epoch) < 0:
            raise ValueError(f"epoch must be >= 0; got {epoch}")
        self.epoch = int(epoch)

    def _epoch_plan(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Order of the samples and (if augmenting) per-sample (dy, dx, flip) for this epoch."""
        n, gen = self.num_samples, epoch_generator(self.seed, self.epoch)
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        params = None
        if self.augment:
            offsets = torch.randint(0, 2 * PAD + 1, (2, n), generator=gen)
            flips = torch.randint(0, 2, (1, n), generator=gen)
            params = torch.cat([offsets, flips]).to(self.device)
        return order.to(self.device), params

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        order, params = self._epoch_plan()
        for i in range(len(self)):
            with _one_thread(self.device):
                batch = self._batch(order, params, slice(i * self.batch_size, (i + 1) * self.batch_size))
            yield batch
        self.epoch += 1

    def _batch(self, order: torch.Tensor, params: torch.Tensor | None, sl: slice) -> tuple[torch.Tensor, torch.Tensor | None]:
        idx = order[sl]
        x = self.images[idx]
        if params is not None:
            p = params[:, sl]
            x = crop_flip(x, p[0], p[1], p[2].bool())
        x = x.float().mul_(self._scale).add_(self._shift)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, (None if self.labels is None else self.labels[idx])

    def __repr__(self) -> str:
        return (
            f"Loader(num_samples={self.num_samples}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"augment={self.augment}, device='{self.device}', seed={self.seed}, epoch={self.epoch})"
        )


@contextlib.contextmanager
def _one_thread(device: torch.device) -> Iterator[None]:
    """On CPU, build a batch with one intra-op thread (restored before the batch is yielded).

    The batch ops are tiny and memory-bound; with 2 OpenMP threads on a busy 2-core machine they
    took 126 ms per batch of 128 instead of 5 ms (oversubscription), and gain little when idle.
    """
    previous = torch.get_num_threads()
    if device.type != "cpu" or previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def balanced_subset(labels: torch.Tensor | None, per_class: int, seed: int) -> torch.Tensor:
    """Indices (sorted) of ``per_class`` images of every class, chosen by a permutation seeded with ``seed``."""
    if labels is None:
        raise ValueError("subset_per_class needs labels; pass labels or subset_per_class=None")
    if int(per_class) < 1:
        raise ValueError(f"subset_per_class must be a positive integer; got {per_class}")
    labels = labels.cpu()
    perm = torch.randperm(labels.numel(), generator=epoch_generator(seed, 0, stream=1))
    keep = []
    for cls in torch.unique(labels).tolist():
        members = perm[labels[perm] == cls]
        if members.numel() < per_class:
            raise ValueError(
                f"class {cls} has only {members.numel()} images; pass subset_per_class <= {members.numel()}"
            )
        keep.append(members[:per_class])
    return torch.cat(keep).sort().values


def _validate(images: torch.Tensor, labels: torch.Tensor | None, batch_size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"Loader expects uint8 images of shape (N, 3, H, W) (from load_dataset); got {got}")
    if labels is not None:
        labels = torch.as_tensor(labels, dtype=torch.int64)
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must have shape ({images.shape[0]},); got {tuple(labels.shape)}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size}")
    return images, labels
