"""Images/s of one epoch of augmented CIFAR-10 batches: lnlab's ``Loader`` vs the official code's pipeline.

Reference = what the official LogitNorm code (hongxin001/logitnorm_ood, train.py) does: a
``torch.utils.data.DataLoader`` over PIL images with ``RandomCrop(32, padding=4)``,
``RandomHorizontalFlip()``, ``ToTensor()``, ``Normalize(mean, std)``, then ``.to(device)`` per batch.
lnlab = the split kept on the device as one uint8 tensor, crop/flip/normalize as batched tensor ops.
Both timings include getting every batch onto the device and a final synchronize.

    python benchmarks/data_speed.py                      # CPU, and the GPU when there is one
    python benchmarks/data_speed.py --device cpu --limit 10000 --epochs 1
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from lnlab.data import CIFAR_MEAN, CIFAR_STD, Loader, load_dataset


class PilDataset(Dataset):
    """CIFAR-style dataset: HWC uint8 array -> PIL image -> torchvision transforms (as torchvision.datasets.CIFAR10)."""

    def __init__(self, images_hwc: np.ndarray, labels: np.ndarray, transform: transforms.Compose) -> None:
        self.images, self.labels, self.transform = images_hwc, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_epochs(batches, device: torch.device, epochs: int) -> float:
    """Seconds per epoch (mean), consuming every batch on ``device``."""
    sync(device)
    start = time.perf_counter()
    for _ in range(epochs):
        for x, y in batches():
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
        sync(device)
    return (time.perf_counter() - start) / epochs


def bench(device: torch.device, images: torch.Tensor, labels: torch.Tensor, args: argparse.Namespace) -> list[tuple]:
    n = images.shape[0]
    rows = []
    start = time.perf_counter()
    loader = Loader(images, labels, args.batch_size, shuffle=True, augment=True, device=device, seed=0)
    sync(device)
    setup = time.perf_counter() - start
    seconds = time_epochs(lambda: iter(loader), device, args.epochs)
    rows.append((str(device), "lnlab Loader", n, seconds, n / seconds, f"one-off copy to device {setup:.2f} s"))

    tf = transforms.Compose([
        transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
        transforms.ToTensor(), transforms.Normalize(CIFAR_MEAN, CIFAR_STD),
    ])
    dataset = PilDataset(images.permute(0, 2, 3, 1).numpy(), labels.numpy(), tf)
    workers = args.workers if args.workers is not None else min(4, os.cpu_count() or 1)
    dl = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=workers,
                    pin_memory=device.type == "cuda")
    seconds_ref = time_epochs(lambda: iter(dl), device, args.epochs)
    rows.append((str(device), f"DataLoader+PIL ({workers} workers)", n, seconds_ref, n / seconds_ref,
                 f"lnlab {seconds_ref / seconds:.1f}x faster"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="auto = CPU, then CUDA when available")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=1, help="epochs timed per pipeline (mean reported)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default min(4, cpus))")
    args = parser.parse_args()

    train = load_dataset("cifar10", "train")
    images, labels = train.images[: args.limit], train.labels[: args.limit]
    devices = {"cpu": ["cpu"], "cuda": ["cuda"], "auto": ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])}
    rows = []
    for name in devices[args.device]:
        if name == "cuda":
            torch.zeros(1, device="cuda").sum().item()  # CUDA context outside the timing
        rows += bench(torch.device(name), images, labels, args)

    header = ("device", "pipeline", "images", "s/epoch", "images/s", "note")
    table = [header] + [(d, p, f"{n:,}", f"{s:.2f}", f"{r:,.0f}", note) for d, p, n, s, r, note in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    print(f"augmented CIFAR-10, batch {args.batch_size}, torch {torch.__version__}, {os.cpu_count()} CPUs")
    for i, row in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
