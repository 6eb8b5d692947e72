"""A 2-D toy for LogitNorm's mechanism: scale invariance, norm dynamics, confidence over the plane.

Wei et al., ICML 2022 (arXiv 2205.09310v2). Eq. (6)-(7): LogitNorm is cross-entropy on ``f / (τ‖f‖)``,
so it is invariant to the logit norm ``‖f‖``; Sec. 3: under cross-entropy (CE) the norm keeps growing
on correctly classified points. The toy makes both visible in seconds on a CPU, without CIFAR-10:

* :func:`scale_curve`: CE and :func:`lnlab.losses.logit_norm_loss` of ``s·f`` against ``s``.
* :func:`gradient_alignment`: the LogitNorm gradient w.r.t. the logits is orthogonal to ``f``, so a
  gradient step ``f - η g`` has ``‖f - η g‖² = ‖f‖² + η²‖g‖² ≥ ‖f‖²``: steps can only grow the norm,
  and only weight decay shrinks it. In a network the same holds for the last layer (:func:`head_norm`).
* :func:`train_toy`: an MLP 2-64-64-3 (ReLU) trained full-batch on three Gaussian blobs with CE or
  LogitNorm, with or without weight decay, recording the mean raw logit norm on the data every few steps.
* :func:`confidence_map`, :func:`ring_table`, :func:`plane_table`: decision regions and MSP over the plane,
  how well MSP tells the data from points far away (rings around the data; AUROC of MSP, data = positive)
  and on how much of the plane MSP exceeds 0.999.
* :func:`summary_table`, :func:`short_training_table`: what the notebook's text says of the training, measured
  (when every point is classified correctly, peak and last norms; whether a short run at small τ converges).

What the toy does *not* show: LogitNorm does not make far-away points less confident here. A ReLU
network is piecewise linear, so its raw logits grow linearly with the distance from the data under
either loss, and MSP tends to 1 far away (the paper's OOD gains are measured on images, Table 1).
Everything is seeded and deterministic on a given machine; figures are built pyplot-free.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from torch import nn

from lnlab import plots
from lnlab.losses import logit_norm_loss, validate_tau

LOSSES = ("ce", "logitnorm")
RINGS = ((4.0, 6.0), (12.0, 18.0))  # "far" points: the blobs lie within radius ~3 of the origin


# --------------------------------------------------------------------------- data and model


def make_blobs(n: int = 1500, classes: int = 3, radius: float = 2.0, spread: float = 0.5,
               seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points in ``classes`` Gaussian blobs (std ``spread``) centred on a circle of ``radius``.

    Returns ``(x, y)``: float32 ``(n, 2)`` points and int64 labels, balanced (class ``i % classes``).
    With the defaults almost all points lie within radius 3 of the origin.
    """
    if n < classes or classes < 2:
        raise ValueError(f"need classes >= 2 and n >= classes, got n={n}, classes={classes}")
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    angles = 2 * math.pi * y.double() / classes + math.pi / 2
    centres = radius * torch.stack([angles.cos(), angles.sin()], 1)
    x = centres + spread * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return x.float(), y


def make_mlp(hidden: int = 64, classes: int = 3, seed: int = 0) -> nn.Sequential:
    """MLP 2-hidden-hidden-classes with ReLU, initialised from ``seed`` (global RNG left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                             nn.Linear(hidden, classes))


def toy_loss(logits: torch.Tensor, targets: torch.Tensor, loss: str, tau: float) -> torch.Tensor:
    """CE, or the LogitNorm loss of paper Eq. (7) (:func:`lnlab.losses.logit_norm_loss`)."""
    return F.cross_entropy(logits, targets) if loss == "ce" else logit_norm_loss(logits, targets, tau)


def head_norm(model: nn.Sequential) -> float:
    """Norm of the last layer's weights and bias together.

    Scaling them by ``c`` scales every logit vector by ``c``, which the LogitNorm loss ignores
    (Eq. 7), so its gradient w.r.t. them is orthogonal to them: a plain gradient step (no momentum,
    no weight decay) can only grow this norm, ``‖w − ηg‖² = ‖w‖² + η²‖g‖²``.
    """
    last = model[-1]
    return float(torch.sqrt((last.weight.detach().double() ** 2).sum() + (last.bias.detach().double() ** 2).sum()))


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one CPU thread inside the block: for a network this small, more threads only add
    overhead, and on a busy machine threads stall each other (several times slower with 2 threads on 2 busy cores)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# --------------------------------------------------------------------------- training


@dataclass
class ToyRun:
    """One trained toy model: its settings, the model and the history (one row per recorded step)."""

    loss: str
    tau: float
    weight_decay: float
    model: nn.Module
    history: pd.DataFrame  # step, loss, accuracy, norm_mean (mean raw logit norm on the data), head_norm
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        name = "CE" if self.loss == "ce" else f"LogitNorm τ={self.tau:.3g}"
        if not self.weight_decay:
            return f"{name}, no weight decay"
        mantissa, exponent = f"{self.weight_decay:.0e}".split("e")
        return f"{name}, weight decay {mantissa}e{int(exponent)}"

    @property
    def final(self) -> pd.Series:
        return self.history.iloc[-1]

    @torch.no_grad()
    def logits(self, points: torch.Tensor) -> torch.Tensor:
        """Raw logits ``f(x)`` (what the official code scores, also for LogitNorm)."""
        with one_thread():
            return self.model(points)


def train_toy(x: torch.Tensor, y: torch.Tensor, loss: str = "ce", tau: float = 0.04, weight_decay: float = 0.0,
              steps: int = 3000, lr: float = 0.1, momentum: float = 0.9, hidden: int = 64, seed: int = 0,
              record_every: int = 10, optimizer: str = "sgd") -> ToyRun:
    """Full-batch training on ``(x, y)`` with CE or LogitNorm (paper Eq. 7); deterministic for a given ``seed``.

    SGD with ``momentum`` 0.9 and L2 ``weight_decay`` on every parameter follows the paper's recipe
    (Sec. 5.1); ``momentum=0`` is plain gradient descent; ``optimizer="adam"`` uses Adam (``lr`` and
    ``weight_decay`` as given, ``momentum`` ignored), which changes the norm dynamics. Every
    ``record_every`` steps (and at the end) the history records the loss, the training accuracy, the
    mean raw logit norm ``‖f(x)‖₂`` on the data and ``head_norm``, the norm of the last layer's weights
    and bias (:func:`head_norm`).
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    tau = validate_tau(tau)
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    if steps < 1 or record_every < 1:
        raise ValueError(f"steps and record_every must be >= 1, got {steps}, {record_every}")
    classes = int(y.max()) + 1
    model = make_mlp(hidden, classes, seed)
    if optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    with one_thread():
        history, seconds = _fit(model, opt, x, y, loss, tau, steps, record_every, lr)
    model.eval()
    settings = {"steps": steps, "lr": lr, "momentum": momentum, "hidden": hidden, "seed": seed, "n": len(y),
                "optimizer": optimizer}
    return ToyRun(loss, tau, float(weight_decay), model, history, seconds, settings)


def _fit(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, loss: str, tau: float,
         steps: int, record_every: int, lr: float) -> tuple[pd.DataFrame, float]:
    """The training loop of :func:`train_toy`: returns the history and the seconds it took."""
    rows, start = [], time.perf_counter()
    for step in range(steps + 1):
        logits = model(x)
        value = toy_loss(logits, y, loss, tau)
        if step % record_every == 0 or step == steps:
            with torch.no_grad():
                rows.append({"step": step, "loss": float(value), "accuracy": float((logits.argmax(1) == y).float().mean()),
                             "norm_mean": float(torch.linalg.vector_norm(logits, dim=1).mean()),
                             "head_norm": head_norm(model)})
        if step == steps:
            break
        if not torch.isfinite(value):
            raise FloatingPointError(f"toy training diverged at step {step} ({loss}, lr {lr}); lower lr")
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
    return pd.DataFrame(rows), time.perf_counter() - start


def train_grid(x: torch.Tensor, y: torch.Tensor, tau: float = 0.04, weight_decays: Sequence[float] = (0.0, 5e-4),
               **kwargs: Any) -> dict[str, ToyRun]:
    """CE and LogitNorm, each without and with weight decay: ``{run.label: ToyRun}`` (CE first)."""
    runs = [train_toy(x, y, loss, tau=tau, weight_decay=wd, **kwargs) for loss in LOSSES for wd in weight_decays]
    return {run.label: run for run in runs}


# --------------------------------------------------------------------------- (a), (b): one logit vector


def scale_curve(logits: Sequence[float] | torch.Tensor = (2.0, 1.0, -1.0), scales: Sequence[float] | None = None,
                tau: float = 0.04) -> pd.DataFrame:
    """CE and LogitNorm loss of ``s·f`` vs ``s`` for one logit vector ``f``, with every class as target.

    Columns: ``s``, ``target``, ``correct`` (target is ``argmax f``), ``ce``, ``logitnorm`` (nats).
    CE falls with ``s`` when the target is the top class and rises otherwise; LogitNorm is flat
    (paper Eq. 6-7: only the direction ``f/‖f‖`` enters). ``frame.attrs`` keeps ``logits`` and ``tau``.
    """
    f = torch.as_tensor(logits, dtype=torch.float64).reshape(1, -1)
    scales = np.logspace(-1, 1.5, 61) if scales is None else np.asarray(scales, dtype=np.float64)
    rows = []
    for target in range(f.shape[1]):
        t = torch.tensor([target])
        for s in scales:
            scaled = f * float(s)
            rows.append({"s": float(s), "target": target, "correct": target == int(f.argmax()),
                         "ce": float(F.cross_entropy(scaled, t)), "logitnorm": float(logit_norm_loss(scaled, t, tau))})
    frame = pd.DataFrame(rows)
    frame.attrs.update(logits=tuple(float(v) for v in f.flatten()), tau=tau)
    return frame


def gradient_alignment(logits: torch.Tensor, targets: torch.Tensor, tau: float = 0.04, lr: float = 1.0) -> pd.DataFrame:
    """Per-loss cosine between ``∇_f L`` and ``f``, and the norm change of one gradient step on ``f``.

    One row per sample and loss: ``cosine`` = ⟨g, f⟩ / (‖g‖‖f‖) (≈ 0 for LogitNorm: its gradient is
    orthogonal to ``f``), ``norm_before`` = ‖f‖, ``norm_after`` = ‖f − lr·g‖ (never smaller for
    LogitNorm), with ``g`` the gradient of the per-sample loss.
    """
    f = logits.detach().double().clone().requires_grad_(True)
    rows = []
    for name in LOSSES:
        per_sample = (F.cross_entropy(f, targets, reduction="none") if name == "ce"
                      else logit_norm_loss(f, targets, tau, reduction="none"))
        (g,) = torch.autograd.grad(per_sample.sum(), f)
        with torch.no_grad():
            cos = (g * f).sum(1) / (g.norm(dim=1) * f.norm(dim=1)).clamp_min(1e-300)
            before, after = f.norm(dim=1), (f - lr * g).norm(dim=1)
        rows.append(pd.DataFrame({"loss": name, "sample": np.arange(f.shape[0]), "cosine": cos.numpy(),
                                  "norm_before": before.numpy(), "norm_after": after.numpy()}))
    return pd.concat(rows, ignore_index=True)


def gradient_summary(alignment: pd.DataFrame) -> pd.DataFrame:
    """Per loss, from :func:`gradient_alignment`: largest ``|cos(∇L, f)|``, mean cosine, the share of samples
    whose norm a gradient step grows (or keeps, to rounding), and the smallest relative norm change
    ``‖f − ηg‖/‖f‖ − 1``."""
    change = alignment["norm_after"] / alignment["norm_before"] - 1
    frame = alignment.assign(abs_cosine=alignment["cosine"].abs(), change=change, grew=change >= -1e-12)
    summary = frame.groupby("loss", sort=False).agg(**{
        "max |cos(∇L, f)|": ("abs_cosine", "max"), "mean cos(∇L, f)": ("cosine", "mean"),
        "share of ‖f‖ grown by a step": ("grew", "mean"), "min relative norm change": ("change", "min")})
    return summary.rename(index={"ce": "CE", "logitnorm": "LogitNorm"})


# --------------------------------------------------------------------------- (c): the plane


def plane_grid(extent: float = 8.0, resolution: int = 200) -> tuple[np.ndarray, torch.Tensor]:
    """Axis values (``resolution``,) and the ``resolution²`` points of the square ``[-extent, extent]²``."""
    axis = np.linspace(-extent, extent, resolution)
    xx, yy = np.meshgrid(axis, axis)
    return axis, torch.tensor(np.stack([xx.ravel(), yy.ravel()], 1), dtype=torch.float32)


def confidence_map(run: ToyRun, extent: float = 8.0, resolution: int = 200) -> dict[str, np.ndarray]:
    """MSP (max softmax of the raw logits), predicted class and raw logit norm on a grid over the plane.

    Returns ``axis`` and ``(resolution, resolution)`` arrays ``msp``, ``doubt`` (``1 − MSP`` computed
    in log space, so it stays > 0 where MSP rounds to 1), ``prediction``, ``norm`` (row = y value,
    column = x value, as ``imshow(origin="lower")`` draws them).
    """
    axis, points = plane_grid(extent, resolution)
    logits = run.logits(points)
    shape = (resolution, resolution)
    return {"axis": axis, "msp": torch.softmax(logits, 1).amax(1).reshape(shape).numpy(),
            "doubt": msp_doubt(logits).reshape(shape).numpy(),
            "prediction": logits.argmax(1).reshape(shape).numpy(),
            "norm": torch.linalg.vector_norm(logits, dim=1).reshape(shape).numpy()}


def msp_doubt(logits: torch.Tensor) -> torch.Tensor:
    """``1 − MSP`` per row, as ``exp(logsumexp(other logits) − logsumexp(all))`` in float64 (no rounding to 0)."""
    f = logits.double()
    top = f.argmax(1, keepdim=True)
    others = f.scatter(1, top, float("-inf"))
    return torch.exp(torch.logsumexp(others, 1) - torch.logsumexp(f, 1))


def ring_points(n: int, r_min: float, r_max: float, seed: int = 1) -> torch.Tensor:
    """``n`` points uniform in the annulus ``r_min ≤ ‖x‖ ≤ r_max`` (area-uniform), seeded."""
    g = torch.Generator().manual_seed(seed)
    u, angle = torch.rand(n, generator=g, dtype=torch.float64), 2 * math.pi * torch.rand(n, generator=g, dtype=torch.float64)
    r = torch.sqrt(r_min ** 2 + u * (r_max ** 2 - r_min ** 2))
    return torch.stack([r * angle.cos(), r * angle.sin()], 1).float()


def ring_table(runs: Mapping[str, ToyRun], x: torch.Tensor, rings: Sequence[tuple[float, float]] = RINGS,
               n: int = 1500, seed: int = 1) -> pd.DataFrame:
    """Per run and ring: AUROC of MSP for data (positive) vs ring points, mean MSP, mean ``1 − MSP``
    (``doubt_*``, accurate where MSP rounds to 1) and mean raw logit norm, on the data and on the ring.

    AUROC 0.5 = MSP cannot tell the ring from the data; below 0.5 = ring points are *more* confident.
    """
    from lnlab.metrics import ood_metrics

    rows = []
    for label, run in runs.items():
        data_logits = run.logits(x)
        data_msp = torch.softmax(data_logits, 1).amax(1)
        for r_min, r_max in rings:
            far = run.logits(ring_points(n, r_min, r_max, seed))
            far_msp = torch.softmax(far, 1).amax(1)
            rows.append({"run": label, "ring": f"{r_min:g}–{r_max:g}",
                         "auroc_msp": ood_metrics(data_msp.numpy(), far_msp.numpy())["auroc"],
                         "msp_data": float(data_msp.mean()), "msp_ring": float(far_msp.mean()),
                         "doubt_data": float(msp_doubt(data_logits).mean()), "doubt_ring": float(msp_doubt(far).mean()),
                         "norm_data": float(data_logits.norm(dim=1).mean()), "norm_ring": float(far.norm(dim=1).mean())})
    return pd.DataFrame(rows).set_index(["run", "ring"])


def summary_table(runs: Mapping[str, ToyRun], radii: tuple[float, float] = (10.0, 20.0)) -> pd.DataFrame:
    """Per run: final loss, training accuracy, the step from which every training point stays correctly
    classified (:func:`correct_from`), mean raw logit norm on the data (first / peak and its step / last) and
    its change over the last fifth of training (%, > 0: still growing), the last layer's norm (peak / last,
    :func:`head_norm`), the ratio of the raw norm on two circles (``radii``; 2 = linear growth with the
    distance) and seconds."""
    rows = []
    for label, run in runs.items():
        h = run.history
        late = h[h["step"] >= 0.8 * h["step"].iloc[-1]]["norm_mean"]
        on_circles = norm_vs_radius(run, radii)
        rows.append({"run": label, "steps": int(h["step"].iloc[-1]), "final loss": h["loss"].iloc[-1],
                     "train accuracy": h["accuracy"].iloc[-1], "correct from step": correct_from(run),
                     "norm first": h["norm_mean"].iloc[0], "norm peak": h["norm_mean"].max(),
                     "peak step": int(h["step"].iloc[int(h["norm_mean"].to_numpy().argmax())]),
                     "norm last": h["norm_mean"].iloc[-1],
                     "norm change, last fifth %": 100 * (late.iloc[-1] / late.iloc[0] - 1),
                     "last layer peak": h["head_norm"].max(), "last layer last": h["head_norm"].iloc[-1],
                     f"norm r={radii[1]:g} / r={radii[0]:g}": float(on_circles[1] / on_circles[0]),
                     "seconds": run.seconds})
    return pd.DataFrame(rows).set_index("run")


def correct_from(run: ToyRun) -> float:
    """First recorded step from which the training accuracy stays at 100 % to the end (NaN if it is not 100 %
    at the end). Steps are those of the history (every ``record_every`` steps)."""
    h = run.history
    wrong = h[h["accuracy"] < 1.0]["step"]
    if len(wrong) and wrong.iloc[-1] == h["step"].iloc[-1]:
        return float("nan")
    later = h[h["step"] > wrong.iloc[-1]] if len(wrong) else h
    return float(later["step"].iloc[0])


def plane_table(runs: Mapping[str, ToyRun], threshold: float = 0.999, far: float = RINGS[0][0], extent: float = 8.0,
                resolution: int = 200) -> pd.DataFrame:
    """Per run, on the plane that :func:`plot_toy_maps` draws (``resolution²`` points of ``[-extent, extent]²``):
    the share of points whose MSP exceeds ``threshold``, on the whole plane and beyond radius ``far`` (far
    from the data), and the mean MSP there. MSP is compared in log space (``1 − MSP`` < ``1 − threshold``)."""
    _, points = plane_grid(extent, resolution)
    beyond = (points.norm(dim=1) >= far).numpy()
    rows = []
    for label, run in runs.items():
        logits = run.logits(points)
        confident = (msp_doubt(logits) < 1 - threshold).numpy()
        msp = torch.softmax(logits.double(), 1).amax(1).numpy()
        rows.append({"run": label, f"share MSP > {threshold:g}": float(confident.mean()),
                     f"share MSP > {threshold:g}, ‖x‖ ≥ {far:g}": float(confident[beyond].mean()),
                     f"mean MSP, ‖x‖ ≥ {far:g}": float(msp[beyond].mean())})
    return pd.DataFrame(rows).set_index("run")


def short_training_table(x: torch.Tensor, y: torch.Tensor, taus: Sequence[float], steps: int = 300,
                         weight_decay: float = 0.0, seed: int = 0, **kwargs: Any) -> pd.DataFrame:
    """LogitNorm trained for ``steps`` full-batch steps at each τ, as the toy explorer trains it: final training
    accuracy and loss, mean raw logit norm on the data and seconds. A small τ makes the first steps larger
    (the gradient is ∝ 1/τ)."""
    rows = []
    for tau in taus:
        run = train_toy(x, y, "logitnorm", tau=tau, weight_decay=weight_decay, steps=steps, seed=seed,
                        record_every=max(1, steps // 50), **kwargs)
        rows.append({"tau": float(tau), "steps": steps, "train accuracy": float(run.final["accuracy"]),
                     "final loss": float(run.final["loss"]),
                     "norm last": float(run.final["norm_mean"]), "seconds": run.seconds})
    return pd.DataFrame(rows).set_index("tau")


def norm_vs_radius(run: ToyRun, radii: Sequence[float] | np.ndarray, angles: int = 180) -> np.ndarray:
    """Mean raw logit norm on circles of the given radii (``angles`` points each)."""
    theta = torch.linspace(0, 2 * math.pi, angles + 1)[:-1]
    unit = torch.stack([theta.cos(), theta.sin()], 1)
    return np.array([float(run.logits(float(r) * unit).norm(dim=1).mean()) for r in radii])


# --------------------------------------------------------------------------- figures


def plot_scale_curve(curve: pd.DataFrame, tau: float | None = None, width: float = plots.SINGLE_COLUMN * 1.3) -> Figure:
    """Loss of ``s·f`` vs ``s`` (log–log): CE (solid) moves with ``s``, LogitNorm (dashed) is flat (Eq. 6-7).

    ``curve`` is :func:`scale_curve`'s frame; one colour per target class.
    """
    targets = sorted(curve["target"].unique())
    with plots.paper_style():
        fig, axes = plots.new_figure(1, 1, width=width, height=2.6)
        ax = axes[0, 0]
        for color, target in zip(plots.colors(len(targets)), targets):
            part = curve[curve["target"] == target]
            kind = "top class" if bool(part["correct"].iloc[0]) else "not the top class"
            ax.plot(part["s"], part["ce"], color=color, label=f"target {target} ({kind})")
            ax.plot(part["s"], part["logitnorm"], color=color, linestyle="--")
        tau = tau if tau is not None else curve.attrs.get("tau")
        vector = curve.attrs.get("logits")
        title = "loss of s·f" + (f" for f = ({', '.join(f'{v:g}' for v in vector)})" if vector else "")
        ax.set(xscale="log", yscale="log", xlabel="scale s of the logit vector (f → s·f, unitless)",
               ylabel="loss (nats)", title=title + (f", LogitNorm τ = {tau:g}" if tau else ""))
        handles = ax.get_legend_handles_labels()[0]
        handles += [Line2D([], [], color="0.3", label="cross-entropy"),
                    Line2D([], [], color="0.3", linestyle="--", label="LogitNorm (Eq. 7)")]
        fig.legend(handles=handles, loc="outside lower center", ncols=2, frameon=False)
    return fig


def plot_toy_norms(runs: Mapping[str, ToyRun], radii: Sequence[float] | np.ndarray | None = None,
                   data_band: tuple[float, float] = (1.0, 3.0), width: float = plots.DOUBLE_COLUMN) -> Figure:
    """Three panels per set of toy runs: raw logit norm on the data vs step, last-layer norm vs step (log y),
    and the final models' raw logit norm on circles vs their radius (log–log, with a dotted ``∝ r`` guide
    beyond the data; ``data_band`` is shaded: the radii of almost all training points)."""
    radii = np.geomspace(0.25, 20.0, 60) if radii is None else np.asarray(radii, dtype=np.float64)
    with plots.paper_style():
        fig, axes = plots.new_figure(3, 1, width=width, height=2.6)
        ax_norm, ax_head, ax_radius = axes.flat
        top = 0.0
        for color, (label, run) in zip(plots.colors(len(runs)), runs.items()):
            style = {"color": color, "linestyle": "-" if run.loss == "ce" else "--", "label": label}
            ax_norm.plot(run.history["step"], run.history["norm_mean"], **style)
            ax_head.plot(run.history["step"], run.history["head_norm"], **style)
            on_circles = norm_vs_radius(run, radii)
            ax_radius.plot(radii, on_circles, **style)
            top = max(top, float(on_circles[-1]))
        ax_norm.set(yscale="log", xlabel="training step (full batch)", ylabel="mean ‖f(x)‖₂ on the data (unitless)",
                    title="raw logit norm on the training data")
        ax_head.set(yscale="log", xlabel="training step (full batch)",
                    ylabel="‖(weights, bias)‖₂ of the last layer", title="norm of the last layer")
        if radii.size and radii.max() > data_band[1]:
            guide = radii[radii >= data_band[1]]
            ax_radius.plot(guide, 2 * top * guide / guide[-1], color="0.4", linestyle=":", linewidth=1.0)
            ax_radius.text(guide[len(guide) // 2], 2 * top * guide[len(guide) // 2] / guide[-1], "∝ r  ",
                           ha="right", va="bottom", color="0.3")
        ax_radius.axvspan(*data_band, color="0.88", zorder=0)
        ax_radius.text(math.sqrt(data_band[0] * data_band[1]), 0.97, "data", transform=ax_radius.get_xaxis_transform(),
                       ha="center", va="top", color="0.3")
        ax_radius.set(xscale="log", yscale="log", xlabel="radius r = ‖x‖ (input units)",
                      ylabel="mean ‖f(x)‖₂ on the circle ‖x‖ = r", title="after training: norm vs distance")
        handles, labels = ax_norm.get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=len(handles), frameon=False)
    return fig


def plot_toy_maps(runs: Mapping[str, ToyRun], x: torch.Tensor, y: torch.Tensor, extent: float = 8.0,
                  resolution: int = 200, rings: Sequence[tuple[float, float]] = RINGS[:1], floor: float = 1e-8,
                  width: float | None = None) -> Figure:
    """MSP of the raw logits over the plane, one panel per run.

    Colour = ``1 − MSP`` on a log scale (yellow: MSP ≥ 1 − ``floor``; dark: uncertain), labelled in MSP;
    white lines = decision boundaries; dots = training data; dotted circles = the given ring(s).
    A linear MSP scale would be uniformly yellow: MSP exceeds 0.99 almost everywhere.
    """
    from matplotlib.colors import LogNorm

    n = len(runs)
    width = width if width is not None else (plots.DOUBLE_COLUMN if n > 1 else 4.2)
    classes = int(y.max()) + 1
    with plots.paper_style():
        fig, axes = plots.new_figure(n, 1, width=width, height=width / n + (1.0 if n > 1 else -0.2), sharey=True)
        image = None
        theta = np.linspace(0, 2 * np.pi, 200)
        for ax, (label, run) in zip(axes.flat, runs.items()):
            grid = confidence_map(run, extent, resolution)
            box = (-extent, extent, -extent, extent)
            doubt = np.clip(grid["doubt"], floor, 1 - 1 / classes)
            image = ax.imshow(doubt, origin="lower", extent=box, cmap="viridis_r",
                              norm=LogNorm(vmin=floor, vmax=1 - 1 / classes), interpolation="nearest")
            ax.contour(grid["axis"], grid["axis"], grid["prediction"], levels=np.arange(classes - 1) + 0.5,
                       colors="white", linewidths=1.0)
            ax.scatter(x[:, 0].numpy(), x[:, 1].numpy(), s=1.0, color="black", edgecolors="none", alpha=0.6)
            for r_min, r_max in rings:
                for r in (r_min, r_max):
                    ax.plot(r * np.cos(theta), r * np.sin(theta), color="white", linestyle=":", linewidth=0.8)
            ax.set(xlim=(-extent, extent), ylim=(-extent, extent), aspect="equal", title=label.replace(", ", "\n"),
                   xlabel="x₁ (input units)")
            ax.grid(False)
        axes[0, 0].set_ylabel("x₂ (input units)")
        bar = fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.85, pad=0.02)
        ticks = [t for t in (0.5, 0.1, 1e-2, 1e-3, 1e-4, 1e-6, 1e-8, 1e-12) if floor <= t <= 1 - 1 / classes]
        bar.set_ticks(ticks, labels=[_msp_tick(t) for t in ticks])
        bar.minorticks_off()
        bar.set_label("MSP of the raw logits (probability)")
        handles = [Line2D([], [], color="black", marker=".", linestyle="", label="training data"),
                   Line2D([], [], color="white", label="decision boundary")]
        handles += [Line2D([], [], color="white", linestyle=":", label=f"ring {a:g} ≤ ‖x‖ ≤ {b:g} (far points)")
                    for a, b in rings]
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles) if n > 1 else 2, frameon=True,
                   facecolor="0.55",
                   edgecolor="none")
    return fig


def _msp_tick(doubt: float) -> str:
    """Colour-bar label of ``1 − MSP = doubt``: 0.5, 0.9, 0.99, 0.999, then ``1 − 10⁻ⁿ`` (mathtext)."""
    exponent = round(-math.log10(doubt))
    return f"{1 - doubt:.{max(1, exponent)}f}" if doubt >= 1e-3 else f"$1-10^{{-{exponent}}}$"
