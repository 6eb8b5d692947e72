"""Training throughput: lnlab's train step vs the official LogitNorm code's pipeline.

lnlab: the whole split on the device as one uint8 tensor, pad-crop-flip as tensor ops
(``lnlab.data.Loader``), ``lnlab.train.train_epoch`` (channels_last, bf16 autocast where
``lnlab.precision`` allows it, optional torch.compile); on a CPU lnlab is timed both in float32 and
in bf16, side by side. Reference (hongxin001/logitnorm_ood ``train.py``): a
``torch.utils.data.DataLoader`` over PIL images with torchvision ``RandomCrop(32, 4)``,
``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``, worker processes, float32, same model,
same SGD. Both train on real CIFAR-10 images (``$LNLAB_DATA``) for ``--steps`` steps after a
warm-up; the table gives images/s and the ratio.

    python benchmarks/train_speed.py                        # CPU, fastnet, float32 and bf16
    python benchmarks/train_speed.py --model airnet         # CPU, the laptop recipe's network
    python benchmarks/train_speed.py --device cuda          # GPU, WRN-40-2 (default there)
    python benchmarks/train_speed.py --device cuda --compile
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from PIL import Image

from lnlab.config import TrainConfig
from lnlab.data import CIFAR_MEAN, CIFAR_STD, Loader, load_dataset
from lnlab.precision import use_bf16
from lnlab.train import lr_factor, make_model, train_epoch


class PILDataset(torch.utils.data.Dataset):
    """CIFAR as the official code sees it: HWC uint8 arrays -> PIL image -> torchvision transforms."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images = images.permute(0, 2, 3, 1).contiguous().numpy()
        self.labels = labels.numpy()
        self.transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                                    T.Normalize(CIFAR_MEAN, CIFAR_STD)])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_lnlab(config: TrainConfig, images, labels, steps: int, warmup: int) -> float:
    device = torch.device(config.resolved_device())
    model = make_model(config, 10).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay, nesterov=config.nesterov)
    forward = torch.compile(model) if config.compile else model
    n = steps * config.batch_size
    timed = Loader(images[:n], labels[:n], config.batch_size, shuffle=True, augment=True, device=device,
                   drop_last=True, channels_last=config.channels_last)
    warm = Loader(images[: warmup * config.batch_size], labels[: warmup * config.batch_size], config.batch_size,
                  shuffle=True, augment=True, device=device, drop_last=True, channels_last=config.channels_last)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config, len(timed)))
    bf16 = use_bf16(config.amp, device)
    train_epoch(forward, warm, optimizer, scheduler, config, 1, progress=False, bf16=bf16)
    _sync(device)
    start = time.perf_counter()
    train_epoch(forward, timed, optimizer, scheduler, config, 2, progress=False, bf16=bf16)
    _sync(device)
    return n / (time.perf_counter() - start)


def bench_reference(config: TrainConfig, images, labels, steps: int, warmup: int, workers: int) -> float:
    device = torch.device(config.resolved_device())
    model = make_model(config, 10).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    n = (steps + warmup) * config.batch_size
    loader = torch.utils.data.DataLoader(PILDataset(images[:n], labels[:n]), batch_size=config.batch_size,
                                         shuffle=True, num_workers=workers, pin_memory=device.type == "cuda",
                                         drop_last=True, persistent_workers=False)
    model.train()
    for i, (x, y) in enumerate(loader):
        if i == warmup:
            _sync(device)
            start = time.perf_counter()
        x, y = x.to(device), y.to(device)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    _sync(device)
    return steps * config.batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--model", default=None, help="default: wrn40_2 on cuda, fastnet on cpu")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 200 cuda, 20 cpu)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 20 cuda, 3 cpu)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=None, help="reference DataLoader workers (official: 4)")
    parser.add_argument("--compile", action="store_true", help="torch.compile lnlab's model")
    parser.add_argument("--loss", default="ce", choices=["ce", "logitnorm"])
    args = parser.parse_args()

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device == "cuda"
    model = args.model or ("wrn40_2" if cuda else "fastnet")
    steps = args.steps or (200 if cuda else 20)
    warmup = args.warmup or (20 if cuda else 3)
    workers = args.workers if args.workers is not None else min(4, os.cpu_count() or 1)
    config = TrainConfig(model=model, device=device, batch_size=args.batch_size, loss=args.loss,
                         compile=args.compile, ood=())
    train = load_dataset("cifar10", "train")
    need = (steps + warmup) * args.batch_size
    if need > len(train):
        parser.error(f"--steps + --warmup need {need} images; CIFAR-10 has {len(train)}")

    # On a CPU: lnlab in float32 and in bf16 (when this CPU has native bf16), side by side.
    variants = [config] if cuda else [config.replace(amp=False), *([config] if use_bf16(True, "cpu") else [])]
    timings = {("bf16 autocast" if use_bf16(c.amp, device) else "float32"): bench_lnlab(c, train.images, train.labels,
                                                                                         steps, warmup)
               for c in variants}
    ref_ips = bench_reference(config, train.images, train.labels, steps, warmup, workers)
    name = torch.cuda.get_device_name() if cuda else f"CPU ({torch.get_num_threads()} threads)"
    print(f"\n{model}, batch {args.batch_size}, {steps} timed steps on {name}; torch {torch.__version__}")
    print(f"{'pipeline':<64} {'images/s':>10} {'vs reference':>13}")
    for precision, ips in timings.items():
        label = f"lnlab (device Loader, {precision}, channels_last{', compile' if args.compile else ''})"
        print(f"{label:<64} {ips:>10.0f} {ips / ref_ips:>12.2f}x")
    print(f"{f'reference (DataLoader+PIL+torchvision, {workers} workers, fp32)':<64} {ref_ips:>10.0f} {1:>12.2f}x")
    if len(timings) == 2:
        fp32, bf16 = timings.values()
        print(f"{'bf16 / float32 (lnlab)':<64} {bf16 / fp32:>10.2f}x")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
