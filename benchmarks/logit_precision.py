"""What bf16 logits change: LogitNorm loss, MSP and OOD metrics, float32 head vs a bf16 head.

Under bf16 autocast lnlab runs the classifier head in float32 (``lnlab.models.float32_head``).
This script measures what that changes on trained ``ci`` runs (or ``--profile laptop``) (LogitNorm at τ = 0.01 and 0.04,
CIFAR-10 test set vs Textures), on the CPU's bf16 autocast, against a float32 forward pass:

- ``bf16 body + fp32 head``: lnlab's mixed precision;
- ``bf16 body + bf16 head``: the head under autocast too (lnlab before this change);
- ``fp32 logits rounded to bf16``: the rounding alone, the way a bf16 cache would store them.

Columns: max and mean |Δ| of the per-sample LogitNorm loss (nats) and of MSP, and the change of
AUROC (MSP, in points) and accuracy (points). Run: ``python benchmarks/logit_precision.py``.
"""

from __future__ import annotations

import argparse
import contextlib

import torch
import torch.nn.functional as F

import lnlab.models
from lnlab.data import normalize
from lnlab.losses import normalize_logits
from lnlab.metrics import ood_metrics
from lnlab.profiles import make_config
from lnlab.runs import get_run
from lnlab.scores import msp
from lnlab.splits import eval_set


@contextlib.contextmanager
def bf16_head():
    """Run the classifier head under autocast like the rest of the network."""
    original = lnlab.models.float32_head
    lnlab.models.float32_head = lambda fc, features: fc(features)
    try:
        yield
    finally:
        lnlab.models.float32_head = original


def forward(model, images: torch.Tensor, bf16: bool) -> torch.Tensor:
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return torch.cat([model(normalize(chunk)) for chunk in images.split(500)])


def per_sample_loss(logits: torch.Tensor, labels: torch.Tensor, tau: float) -> torch.Tensor:
    return F.cross_entropy(normalize_logits(logits.float(), tau), labels, reduction="none")


def compare(name: str, logits: torch.Tensor, ood: torch.Tensor, ref: tuple, labels, tau: float) -> dict:
    ref_logits, ref_ood = ref
    dloss = (per_sample_loss(logits, labels, tau) - per_sample_loss(ref_logits, labels, tau)).abs()
    dmsp = (msp(logits.float()) - msp(ref_logits)).abs()
    auroc = ood_metrics(msp(logits.float()), msp(ood.float()))["auroc"]
    ref_auroc = ood_metrics(msp(ref_logits), msp(ref_ood))["auroc"]
    acc = (logits.argmax(1) == labels).float().mean() - (ref_logits.argmax(1) == labels).float().mean()
    return {"tau": tau, "logits": name, "loss_max": float(dloss.max()), "loss_mean": float(dloss.mean()),
            "msp_max": float(dmsp.max()), "msp_mean": float(dmsp.mean()),
            "auroc_points": 100 * (auroc - ref_auroc), "acc_points": 100 * float(acc)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--taus", nargs="+", type=float, default=[0.01, 0.04])
    parser.add_argument("--profile", default="ci", help="ci, or laptop (the shipped runs, with their float16 weights)")
    parser.add_argument("--runs", default=None, help="run cache (default $LNLAB_RUNS or runs/)")
    args = parser.parse_args()
    rows = []
    for tau in args.taus:
        run = get_run(make_config(args.profile, loss="logitnorm", tau=tau), root=args.runs)
        model = run.model()
        test, ood = eval_set(run.config, "test"), eval_set(run.config, "textures")
        ref = (forward(model, test.images, False), forward(model, ood.images, False))
        mixed = (forward(model, test.images, True), forward(model, ood.images, True))
        with bf16_head():
            old = (forward(model, test.images, True), forward(model, ood.images, True))
        rounded = tuple(x.to(torch.bfloat16) for x in ref)
        for name, pair in [("bf16 body + fp32 head", mixed), ("bf16 body + bf16 head", old),
                           ("fp32 logits rounded to bf16", rounded)]:
            rows.append(compare(name, pair[0], pair[1], ref, test.labels, tau))
    print("| τ | logits vs float32 | max / mean abs. Δ loss (nats) | max / mean abs. Δ MSP | Δ AUROC (pts) | Δ acc (pts) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['tau']:g} | {r['logits']} | {r['loss_max']:.3g} / {r['loss_mean']:.2g} | "
              f"{r['msp_max']:.3g} / {r['msp_mean']:.2g} | {r['auroc_points']:+.2f} | {r['acc_points']:+.2f} |")


if __name__ == "__main__":
    main()
