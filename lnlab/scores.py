"""Post-hoc OOD scores; higher always means "more in-distribution".

The paper (Sec. 5, Table 1-2) evaluates LogitNorm with the maximum softmax probability and
compares other post-hoc scores (Table 3): ODIN, Energy, GradNorm.  Logit-only scores work on
cached logits; ``odin`` and ``gradnorm`` need the model and the inputs.

* MSP (Hendrycks & Gimpel 2017): ``max_c softmax(f/T)_c``.
* MaxLogit (Hendrycks et al. 2022): ``max_c f_c``.
* Energy (Liu et al. 2020): ``T · logsumexp(f/T)`` (the negative free energy).
* Logit norm: ``‖f‖₂``, the quantity LogitNorm decouples from training (paper Fig. 1).
* ODIN (Liang et al. 2018): MSP at temperature T after a small input step that raises it.
* GradNorm (Huang et al. 2021): L1 norm of the last layer's weight gradient of
  ``KL(uniform ‖ softmax(f/T))`` (closed form, batched).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lnlab.data import CIFAR_STD

LOGIT_SCORES = ("msp", "max_logit", "energy", "logit_norm")
MODEL_SCORES = ("odin", "gradnorm")


def _check_logits(logits: torch.Tensor) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"logits must be a 2-D tensor (num_samples, num_classes), got {shape}")
    return logits.float()


def _check_temperature(temperature: float) -> float:
    value = float(temperature)
    if not value > 0 or value == float("inf"):
        raise ValueError(f"temperature must be a finite number > 0 (1 means none), got {temperature!r}")
    return value


def msp(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Maximum softmax probability of ``logits / T``."""
    logits = _check_logits(logits)
    return torch.softmax(logits / _check_temperature(temperature), dim=1).amax(dim=1)


def max_logit(logits: torch.Tensor) -> torch.Tensor:
    """Largest raw logit."""
    return _check_logits(logits).amax(dim=1)


def energy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Negative free energy ``T · logsumexp(f / T)``."""
    logits = _check_logits(logits)
    temperature = _check_temperature(temperature)
    return temperature * torch.logsumexp(logits / temperature, dim=1)


def logit_norm_score(logits: torch.Tensor) -> torch.Tensor:
    """Euclidean norm of the raw logit vector ``‖f‖₂``."""
    return torch.linalg.vector_norm(_check_logits(logits), dim=1)


def _model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def odin(model: nn.Module, x: torch.Tensor, temperature: float = 1000.0, epsilon: float = 0.0014,
         std: Sequence[float] | None = CIFAR_STD) -> torch.Tensor:
    """ODIN score: MSP at temperature T of ``x - ε · sign(∇ₓ CE(f(x)/T, ŷ)) / std``.

    ``x`` are inputs normalized with per-channel ``std`` (lnlab's default: the CIFAR statistics);
    dividing the step by ``std`` makes ``ε`` a step in [0, 1] pixel units, as the ODIN code does.
    Pass ``std=None`` for inputs that are not normalized. The model is used in its current mode
    (call ``eval()``).
    """
    temperature = _check_temperature(temperature)
    x = x.detach().to(_model_device(model)).requires_grad_(True)
    logits = model(x).float() / temperature
    loss = F.cross_entropy(logits, logits.argmax(dim=1))
    (gradient,) = torch.autograd.grad(loss, x)
    step = gradient.sign()
    if std is not None:
        step = step / torch.as_tensor(std, dtype=step.dtype, device=step.device).view(1, -1, 1, 1)
    with torch.no_grad():
        return msp(model(x - epsilon * step), temperature).cpu()


def _last_linear(model: nn.Module) -> nn.Linear:
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ValueError("gradnorm needs a model whose last layer is nn.Linear")
    return linears[-1]


def gradnorm(model: nn.Module, x: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """GradNorm score: ``‖∂ KL(u ‖ softmax(f/T)) / ∂W_last‖₁`` per sample, in one batched pass.

    The last layer's gradient of ``-mean_c log softmax(f/T)_c`` is the outer product
    ``(softmax(f/T) - 1/k) h^T / T`` of the logit gradient and the layer's input ``h``, so its L1
    norm is ``‖softmax(f/T) - 1/k‖₁ · ‖h‖₁ / T`` (Huang et al. 2021, Sec. 3): no backward pass per
    sample. Exact when the model's output is that last ``nn.Linear``'s output.
    """
    temperature = _check_temperature(temperature)
    layer = _last_linear(model)
    captured: list[torch.Tensor] = []
    hook = layer.register_forward_hook(lambda module, args, output: captured.append(args[0]))
    try:
        with torch.no_grad():
            logits = model(x.to(_model_device(model))).float()
    finally:
        hook.remove()
    features = captured[-1].float().flatten(1)
    k = logits.shape[1]
    deviation = (torch.softmax(logits / temperature, dim=1) - 1.0 / k).abs().sum(dim=1)
    return (deviation * features.abs().sum(dim=1) / temperature).cpu()


_LOGIT_FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "msp": msp,
    "max_logit": max_logit,
    "energy": energy,
    "logit_norm": logit_norm_score,
}
_MODEL_FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {"odin": odin, "gradnorm": gradnorm}
_TEMPERATURE_SCORES = ("msp", "energy", "odin", "gradnorm")


def available_scores() -> list[str]:
    """Names accepted by :func:`score`."""
    return list(LOGIT_SCORES + MODEL_SCORES)


def score(
    name: str,
    logits: torch.Tensor | None = None,
    *,
    model: nn.Module | None = None,
    x: torch.Tensor | None = None,
    temperature: float | None = None,
    **kwargs,
) -> torch.Tensor:
    """Compute OOD score ``name`` (see :func:`available_scores`); higher = more in-distribution.

    Logit scores take ``logits``; ``odin`` and ``gradnorm`` take ``model`` and ``x``.
    ``temperature`` applies to msp, energy, odin and gradnorm (default: each score's own).
    """
    if name not in _LOGIT_FUNCTIONS and name not in _MODEL_FUNCTIONS:
        raise ValueError(f"unknown score {name!r}; choose one of {available_scores()}")
    if temperature is not None:
        if name not in _TEMPERATURE_SCORES:
            raise ValueError(f"score {name!r} takes no temperature; pass temperature only to {_TEMPERATURE_SCORES}")
        kwargs["temperature"] = temperature
    if name in _LOGIT_FUNCTIONS:
        if logits is None:
            raise ValueError(f"score {name!r} needs logits=... (a 2-D tensor of raw logits)")
        return _LOGIT_FUNCTIONS[name](logits, **kwargs)
    if model is None or x is None:
        raise ValueError(f"score {name!r} needs model=... and x=... (normalized inputs), not logits")
    return _MODEL_FUNCTIONS[name](model, x, **kwargs)
