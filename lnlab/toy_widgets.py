"""The toy explorer of notebook 00, the one explorer that trains: a τ slider retrains the 2-D LogitNorm model.

An :class:`lnlab.explorer.Explorer` like those of :mod:`lnlab.widgets`; training runs in a background
worker (:class:`lnlab.explorer.Background`) inside a Jupyter kernel, and the neighbouring slider values are
trained ahead once the explorer is on screen.
"""

from __future__ import annotations

import math
from typing import Any

import ipywidgets as W

from lnlab.explorer import Background, Drawn, Explorer, PngRenderer, in_kernel
from lnlab.formatting import format_number, format_probability


def toy_explorer(tau: float = 0.04, steps: int = 300, weight_decay: float = 0.0, n: int = 1500, seed: int = 0,
                 extent: float = 8.0, resolution: int = 200, tau_range: tuple[float, float] = (0.005, 1.0),
                 background: bool | None = None, ahead: int = 1) -> Explorer:
    """τ slider that retrains the 2-D toy's LogitNorm model and redraws its MSP map (paper Eq. 7, :mod:`lnlab.toy`).

    The one explorer that trains: ``steps`` full-batch SGD steps of an MLP 2-64-64-3 on ``n`` points
    take about 0.3 s on an idle CPU core (its text prints each training's time). Each τ is trained once
    and kept. With ``background`` (default: inside a Jupyter kernel) a new τ is trained in a background
    thread: the text says so at once, the previous map stays until the new one is ready, and once the
    explorer is on screen the ``ahead`` slider values on each side of the current one are trained in
    advance, so a step of the slider after a pause shows its map at once (one value ahead: a quick
    second step waits for the one retrain it asked for, never for a guess). Without it (tests, scripts)
    setting the slider trains before it returns.
    ``state`` holds the ``run`` (:class:`lnlab.toy.ToyRun`), ``accuracy``, ``norm`` (mean raw logit
    norm on the data), ``msp_data`` / ``msp_ring`` (mean MSP on the data and on the ring 4 ≤ ‖x‖ ≤ 6),
    ``auroc_ring`` (AUROC of MSP, data vs ring), ``seconds`` (training time) and ``pending`` (the τ
    being trained while the previous map is shown, else None). ``explorer.background.idle(timeout)``
    waits for the background thread.
    """
    from lnlab import toy

    x, y = toy.make_blobs(n, seed=seed)
    ring = toy.RINGS[:1]
    slider = W.FloatLogSlider(value=tau, base=10, min=math.log10(tau_range[0]), max=math.log10(tau_range[1]),
                              step=0.05, description="τ", readout_format=".3g", continuous_update=False)
    background = in_kernel() if background is None else background
    worker_png = PngRenderer()  # the worker's own canvases (the first map is drawn before the worker starts)
    asked: dict[float, float] = {}  # key -> the τ value asked for

    def key(t: float) -> float:
        """τ values equal to 6 decimals of log10(τ) are one (the browser's and Python's 10**x may differ)."""
        return round(math.log10(t), 6)

    def compute(k: float) -> tuple[Drawn, str, dict[str, Any]]:
        t = asked.get(k, 10 ** k)
        run = toy.train_toy(x, y, "logitnorm", tau=t, weight_decay=weight_decay, steps=steps, seed=seed,
                            record_every=max(1, steps // 50))
        rings = toy.ring_table({run.label: run}, x, rings=ring).iloc[0]
        numbers = {"run": run, "accuracy": float(run.final["accuracy"]), "norm": float(run.final["norm_mean"]),
                   "msp_data": float(rings["msp_data"]), "msp_ring": float(rings["msp_ring"]),
                   "auroc_ring": float(rings["auroc_msp"]), "seconds": run.seconds, "pending": None}
        fig = toy.plot_toy_maps({run.label: run}, x, y, extent=extent, resolution=resolution, rings=ring)
        msp_data = format_probability(rings["msp_data"], rings["doubt_data"])
        msp_ring = format_probability(rings["msp_ring"], rings["doubt_ring"])
        text = (f"{run.label}: {steps} full-batch SGD steps in {run.seconds:.2f} s, "
                f"train accuracy {100 * numbers['accuracy']:.1f}%\n"
                f"  mean raw logit norm on the data  {format_number(numbers['norm'])}\n"
                f"  mean MSP: data {msp_data}, ring {ring[0][0]:g}–{ring[0][1]:g} {msp_ring}; "
                f"AUROC of MSP (data vs ring) {numbers['auroc_ring']:.3f}")
        return Drawn(fig, worker_png(fig)), text, {"tau": t, **numbers}

    def ahead_of(t: float) -> list[float]:
        """Keys of the slider values up to ``ahead`` steps from ``t`` (nearest first), on the slider's grid."""
        index = round((math.log10(t) - slider.min) / slider.step)
        steps_max = round((slider.max - slider.min) / slider.step)
        return [key(10 ** (slider.min + i * slider.step)) for d in range(1, ahead + 1) for i in (index + d, index - d)
                if 0 <= i <= steps_max]

    def on_screen() -> bool:
        count = getattr(explorer.widget, "_view_count", None)
        return count is None or count > 0  # None: views are not counted

    def train_ahead(t: float) -> None:
        if background and on_screen():
            jobs.want(ahead_of(t))

    def done(k: float, result: Any) -> None:
        """In the worker thread: show the result if the slider still asks for it, then train ahead of it."""
        with explorer._lock:
            if key(float(slider.value)) != k:
                return
            if isinstance(result, BaseException):
                explorer.show(None, f"training the toy at τ = {asked.get(k, 10 ** k):.3g} failed: {result!r}",
                              {**explorer.state, "pending": None})
                return
            explorer.show(*result)
        train_ahead(asked.get(k, 10 ** k))

    jobs = Background(compute, done)

    def render(values: dict[str, Any]) -> tuple[Drawn | None, str, dict[str, Any]]:
        t = float(values["tau"])
        k = key(t)
        asked.setdefault(k, t)
        if k in jobs.results:
            train_ahead(t)
            return jobs.results[k]
        if not background or not jobs.results:  # the first map is drawn before the cell returns
            jobs.results[k] = compute(k)
            return jobs.results[k]
        previous = explorer.state.get("run")
        jobs.want([k])
        took = explorer.state.get("seconds")
        took = f"; the last training took {took:.2f} s" if took else ""
        text = (f"retraining the toy at τ = {t:.3g} ({steps} steps{took}); the map below is still "
                f"{previous.label if previous is not None else 'the previous τ'}")
        return None, text, {**explorer.state, "tau": t, "pending": t}

    explorer = Explorer({"tau": slider}, render,
                        title="Toy explorer: retrain the 2-D LogitNorm model at another τ")
    explorer.background = jobs
    if background:
        explorer.widget._view_count = 0  # let the frontend count its views: train ahead once the explorer shows

        def first_view(change: Any) -> None:
            if change["new"]:
                train_ahead(float(slider.value))

        explorer.widget.observe(first_view, names="_view_count")
    return explorer
