"""What the norm recorder costs a training loop: seconds per epoch, beside one training epoch.

``lnlab.recorder.NormRecorder`` runs the network over a fixed subset of each set once per epoch (paper
Sec. 3: the logit norm after every epoch). This script builds one of lnlab's networks (default: the
laptop recipe's ``airnet``, 0.49M parameters), trains it in a plain PyTorch loop on ``--train-images``
CIFAR-10 images (SGD, batch 128, float32 unless ``--bf16``), calls the recorder after each of
``--epochs`` epochs with ``--size`` images per set (default 1,000 per set: train, test, textures, mnist),
and prints the recorder's seconds per epoch (mean and max over the epochs; the first call, which moves
the images to the device, counted too) next to the measured training epoch and the epoch of the full
45,000-image laptop recipe extrapolated from the measured images/s.

    python benchmarks/recorder_cost.py                       # CPU, airnet, float32
    python benchmarks/recorder_cost.py --device cuda --bf16  # a GPU
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F

from lnlab.data import balanced_subset, load_dataset
from lnlab.models import build_model
from lnlab.recorder import NormRecorder

LAPTOP_IMAGES = 45_000  # training images per epoch of the laptop recipe (benchmarks/RESULTS.md)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="airnet", help="an lnlab network (lnlab.models), default airnet")
    parser.add_argument("--sets", nargs="+", default=["train", "test", "textures", "mnist"])
    parser.add_argument("--size", type=int, default=1000, help="images per set the recorder sees (default 1000)")
    parser.add_argument("--train-images", type=int, default=5000, help="images per measured training epoch")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true", help="train and record under bf16 autocast")
    args = parser.parse_args()

    device = torch.device(args.device)
    train = load_dataset("cifar10", "train")
    keep = balanced_subset(train.labels, args.train_images // 10, 0)
    x = (train.images[keep].float() / 255).to(device)  # ToTensor's [0, 1]: the recorder's default convention
    y = train.labels[keep].to(device)
    torch.manual_seed(0)
    model = build_model(args.model, 10).to(device)  # it takes [0, 1] images here; no normalisation is needed to time it
    sets = {name: name for name in args.sets if name != "train"}
    sets = {"train": (train.images[keep], train.labels[keep]), **sets} if "train" in args.sets else sets
    recorder = NormRecorder(model, sets=sets, size=args.size, bf16=args.bf16, name=args.model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    train_seconds = []
    for epoch in range(1, args.epochs + 1):
        model.train()
        start = time.perf_counter()
        order = torch.randperm(len(x), device=device)
        for i in range(0, len(x) - 127, 128):
            batch = order[i:i + 128]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
                out = model(x[batch])
            loss = F.cross_entropy(out.float(), y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        train_seconds.append(time.perf_counter() - start)
        recorder(epoch, train_loss=loss.item())

    per_image = sum(train_seconds) / (args.epochs * (len(x) // 128) * 128)
    cost = recorder.cost
    print(f"{args.model} on {args.device} ({'bf16' if args.bf16 else 'float32'}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs, {args.epochs} epochs")
    print(f"recorder, {len(recorder.images)} sets x {args.size} images ({', '.join(recorder.images)}): "
          f"{sum(cost) / len(cost):.2f} s per epoch (max {max(cost):.2f} s, first {cost[0]:.2f} s)")
    print(f"training epoch of {len(x):,} images (measured): {sum(train_seconds) / len(train_seconds):.2f} s "
          f"({1 / per_image:,.0f} images/s)")
    full = per_image * LAPTOP_IMAGES
    print(f"training epoch of {LAPTOP_IMAGES:,} images (the laptop recipe, extrapolated): {full:.1f} s; "
          f"the recorder adds {100 * (sum(cost) / len(cost)) / full:.1f}% to it")


if __name__ == "__main__":
    main()
