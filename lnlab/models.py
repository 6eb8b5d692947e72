"""Networks for CIFAR-sized (32x32) images.

- ``wrn40_2``: WideResNet-40-2 with dropout 0.3, the network of the paper (Wei et al., ICML 2022,
  Sec. 5.1) and of the Outlier Exposure / official LogitNorm code it is copied from.
- ``resnet18``: the CIFAR variant of ResNet-18 (3x3 stem, no max-pool).
- ``fastnet``: a small conv-BN-ReLU + max-pool network (airbench-like) for CPU profiles and quick
  GPU sweeps; ``width`` and ``depth`` set its size.
- ``airnet``: the airbench-style net of the ``laptop`` reference recipe: three blocks of two
  conv-BN-ReLU layers (widths w, 4w, 4w; w = 32: 0.49M parameters), a max-pool in each block.

All models return raw logits f(x) of shape (N, num_classes); the logit norm ||f(x)||_2 that
LogitNorm controls (paper Eq. 5) is taken on exactly this output. The classifier head always runs
in float32, also under bf16 autocast: LogitNorm divides by tau * ||f||, and on a trained ``ci`` run at
tau = 0.01 a bf16 head moved the per-sample loss by up to 0.16 nats, a float32 head by up to 0.043
(benchmarks/RESULTS.md, ``logit_precision.py``).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

def float32_head(fc: nn.Linear, features: torch.Tensor) -> torch.Tensor:
    """``fc(features)`` in float32 whatever the autocast state: the logits feed the loss and the scores."""
    with torch.autocast(features.device.type, enabled=False):
        return fc(features.float())


# ---------------------------------------------------------------------------------------------
# WideResNet (Zagoruyko & Komodakis 2016), as in hongxin001/logitnorm_ood models/wrn.py


class _WideBasicBlock(nn.Module):
    """Pre-activation block: BN-ReLU-conv-BN-ReLU-(dropout)-conv, plus a (1x1 conv) shortcut."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, drop_rate: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.drop_rate = drop_rate
        self.equal_in_out = in_planes == out_planes and stride == 1
        self.shortcut = (
            None
            if self.equal_in_out
            else nn.Conv2d(in_planes, out_planes, 1, stride=stride, padding=0, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        out = F.relu(self.bn2(self.conv1(pre)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        out = self.conv2(out)
        # the official code feeds the *activated* input to the 1x1 shortcut
        return out + (x if self.shortcut is None else self.shortcut(pre))


class WideResNet(nn.Module):
    """WideResNet-``depth``-``widen`` for 32x32 inputs (paper: WRN-40-2, dropout 0.3)."""

    def __init__(self, depth: int = 40, widen: int = 2, num_classes: int = 10, dropout: float = 0.3):
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"WideResNet depth must be 6n+4 (e.g. 16, 28, 40), got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(3, widths[0], 3, stride=1, padding=1, bias=False)
        self.block1 = self._group(n, widths[0], widths[1], 1, dropout)
        self.block2 = self._group(n, widths[1], widths[2], 2, dropout)
        self.block3 = self._group(n, widths[2], widths[3], 2, dropout)
        self.bn = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        _init_official(self)

    @staticmethod
    def _group(n: int, cin: int, cout: int, stride: int, dropout: float) -> nn.Sequential:
        return nn.Sequential(
            *[_WideBasicBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1, dropout) for i in range(n)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = F.relu(self.bn(out))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return float32_head(self.fc, out)


def _init_official(model: nn.Module) -> None:
    """Initialisation of the official WRN code: He-normal (fan-out) convs, BN = (1, 0), fc bias 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            m.weight.data.normal_(0, math.sqrt(2.0 / fan_out))
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.data.fill_(1)
            m.bias.data.zero_()
        elif isinstance(m, nn.Linear):
            m.bias.data.zero_()


# ---------------------------------------------------------------------------------------------
# ResNet-18, CIFAR variant (3x3 stem, no max-pool; as in kuangliu/pytorch-cifar)


class _ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 for 32x32 inputs: 3x3 stem at full resolution, four stages of two blocks."""

    def __init__(self, num_classes: int = 10, width: int = 64) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        stages, cin = [], width
        for i, stride in enumerate((1, 2, 2, 2)):
            cout = width * 2**i
            stages += [_ResBlock(cin, cout, stride), _ResBlock(cout, cout, 1)]
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stages(self.stem(x))
        return float32_head(self.fc, F.adaptive_avg_pool2d(out, 1).flatten(1))


# ---------------------------------------------------------------------------------------------
# fastnet: conv-BN-ReLU blocks with max-pools, airbench-like, for CPU profiles


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class FastNet(nn.Module):
    """A small CNN: ``depth`` conv-BN-ReLU blocks of widths w, 2w, 4w, 8w, ... (capped at 8w).

    Every block but the last is followed by a 2x2 max-pool, so the spatial size shrinks
    32 → 16 → 8 → 4 with the default ``depth=4``; then global average pooling and a linear layer.
    ``width=32, depth=4`` trains at a few thousand images/s on two CPU cores.
    """

    def __init__(self, num_classes: int = 10, width: int = 32, depth: int = 4) -> None:
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"fastnet needs width >= 1 and depth >= 1, got width={width}, depth={depth}")
        layers: list[nn.Module] = []
        cin = 3
        for i in range(depth):
            cout = width * 2 ** min(i, 3)
            layers += _conv_bn_relu(cin, cout)
            if i < depth - 1 and i < 5:  # 32x32 can be halved five times
                layers.append(nn.MaxPool2d(2))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return float32_head(self.fc, F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


class AirNet(nn.Module):
    """Airbench-style CNN (K. Jordan's airbench block shape, plain conv-BN-ReLU): three blocks of
    conv → max-pool 2x2 → BN → ReLU → conv → BN → ReLU with widths ``width``, 4·``width``, 4·``width``
    (32 → 16 → 8 → 4 pixels), global average pooling, a linear head in float32.
    ``width=32`` has 0.49M parameters (about 1 MB in float16)."""

    def __init__(self, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"airnet needs width >= 1, got {width}")
        layers: list[nn.Module] = []
        cin = 3
        for cout in (width, 4 * width, 4 * width):
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.MaxPool2d(2),
                       nn.BatchNorm2d(cout), nn.ReLU(inplace=True), *_conv_bn_relu(cout, cout)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return float32_head(self.fc, F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


# ---------------------------------------------------------------------------------------------
# registry

_MODELS: dict[str, tuple[Callable[..., nn.Module], str]] = {
    "wrn40_2": (lambda num_classes, width=2, **kw: WideResNet(40, width, num_classes, **kw), "WideResNet-40-2, dropout 0.3 (paper)"),
    "resnet18": (lambda num_classes, width=64, **kw: ResNet18(num_classes, width, **kw), "ResNet-18, CIFAR variant"),
    "fastnet": (lambda num_classes, width=32, **kw: FastNet(num_classes, width, **kw), "small conv-BN-ReLU net for CPU"),
    "airnet": (lambda num_classes, width=32, **kw: AirNet(num_classes, width, **kw), "airbench-style 3-block net (laptop recipe)"),
}


def build_for(config: Any, num_classes: int) -> nn.Module:
    """The network of a ``TrainConfig`` (``model``, ``model_width``, ``model_depth``), initialised from
    ``config.seed``."""
    kwargs = {} if config.model_depth is None else {"depth": config.model_depth}
    torch.manual_seed(config.seed)
    return build_model(config.model, num_classes, width=config.model_width, **kwargs)


def classifier_head(model: nn.Module) -> nn.Linear:
    """The network's final linear layer (``fc``, as in every lnlab network; a compiled model's original's; else
    the last ``nn.Linear`` it holds), the head a training loss may read (``lnlab.losses.TrainingLoss``)."""
    model = getattr(model, "_orig_mod", model)
    head = getattr(model, "fc", None)
    if isinstance(head, nn.Linear):
        return head
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]  # a network lnlab did not build
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear classifier head; name its final linear layer 'fc'")
    return linears[-1]


def available_models() -> list[str]:
    """Names accepted by :func:`build_model`."""
    return list(_MODELS)


def build_model(name: str, num_classes: int = 10, width: int | None = None, **kwargs: Any) -> nn.Module:
    """Build a network by name; it returns raw logits of shape (N, ``num_classes``).

    ``width`` is the model's size knob (None = its default): the widen factor of ``wrn40_2``
    (default 2), the first-stage channels of ``resnet18`` (64), ``fastnet`` (32) and ``airnet`` (32).
    Extra keyword arguments go to the model (``dropout`` for wrn40_2, ``depth`` for fastnet).
    """
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; pass one of {available_models()}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    factory = _MODELS[name][0]
    if width is not None:
        kwargs["width"] = width
    return factory(num_classes, **kwargs)
