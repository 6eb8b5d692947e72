"""Sweeps: many runs at once, as Ray tasks on this machine or a Ray cluster, into the caller's run cache.

``run_sweep(configs, parallel=2)`` trains every config that is not cached yet and returns a
:class:`SweepResult`. With Ray installed (``pip install 'lnlab[ray]'``) each run is a Ray task
(Ray core, https://docs.ray.io/en/latest/ray-core/tasks.html): on a local Ray instance by default,
on a cluster with ``address="ray://host:10001"`` (or ``"auto"``). ``parallel`` runs share each GPU
through fractional GPU requests (``num_gpus=1/parallel``; one WRN-40-2 run is bound by per-step
launch overhead, so several share an H200 well); CPU runs get ``cores // parallel`` threads each.
Without Ray, or with ``parallel=1`` and no address, the runs train one after another in this
process (the same cache entries).

Every run lands in the caller's cache exactly as if trained alone (same key, same verified
files): a worker that sees the caller's cache folder (same machine or a shared filesystem, told
apart by a token file the caller writes there) trains into it through :func:`lnlab.runs.get_run`;
any other worker trains into its own temporary cache and sends the finished files back, which the
caller writes atomically and verifies against their manifest. A run that fails is reported at the
end with its error and does not stop the others; Ctrl-C cancels what is still running and keeps
every finished run.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import tempfile
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from lnlab.config import TrainConfig
from lnlab.paths import runs_root

__all__ = ["run_sweep", "SweepResult", "Failure", "default_parallel", "ray_available"]



@dataclass
class Failure:
    """A run of the sweep that raised: its config, the error in one line, and the worker's traceback."""

    config: TrainConfig
    error: str
    traceback: str = ""


@dataclass
class SweepResult:
    """What a sweep did: ``runs`` (key -> Run, cached or trained, in the order asked), ``failures``,
    the ``engine`` ("ray" or "sequential"), the keys it trained and its wall time."""

    runs: dict[str, Any] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    engine: str = "sequential"
    trained: list[str] = field(default_factory=list)
    wall_s: float = 0.0


def ray_available() -> bool:
    """Whether Ray can be imported (the optional extra ``lnlab[ray]``)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def default_parallel() -> int:
    """Runs at once by default: one per GPU where there is a GPU, else one per two CPU cores (1 on 2 cores)."""
    import torch

    return 1 if torch.cuda.is_available() else max(1, _cores() // 2)


def _cores() -> int:
    """CPU cores this process may use (container and affinity limits included)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_sweep(configs: Sequence[TrainConfig], root: str | os.PathLike | None = None, parallel: int | None = None,
              address: str | None = None, progress: bool = True, report: Callable[[str], None] | None = None,
              share_filesystem: bool | None = None) -> SweepResult:
    """Train (or load) every config into the run cache ``root``; see the module docstring.

    ``parallel``: runs at once (per GPU for GPU runs; default :func:`default_parallel`).
    ``address``: a Ray cluster (``"auto"``, ``"ray://host:10001"``); None starts a local instance
    if there is anything to train. ``report`` receives one line per event (default: print).
    ``share_filesystem=False`` makes workers send their files back even where they could write the
    cache (tests). Raises ValueError before any training for bad input (also a GPU run on a cluster
    without GPUs); KeyboardInterrupt after keeping the finished runs.
    """
    from lnlab.runs import is_cached

    report = report or (lambda line: print(line, flush=True))
    parallel = default_parallel() if parallel is None else parallel
    if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
        raise ValueError(f"parallel must be a positive integer (runs at once), got {parallel!r}")
    if address is not None and not ray_available():
        raise ValueError("--address needs Ray: pip install 'lnlab[ray]' (or drop --address to train here)")
    asked = list({c.validate().key(): c for c in configs}.values())
    use_ray = address is not None or parallel > 1
    root_path = runs_root(root)
    root_path.mkdir(parents=True, exist_ok=True)
    result = SweepResult()
    start = time.perf_counter()
    with contextlib.ExitStack() as session:
        if address is not None:  # the cluster decides what "auto" means
            session.enter_context(_ray_session(address))
        resolved = {c.key(): _for_workers(c) if use_ray else c for c in asked}
        todo = [c for c in resolved.values() if not _cached(c, root_path, is_cached, report)]
        if use_ray and todo and not ray_available():
            report(f"[sweep] Ray is not installed (pip install 'lnlab[ray]'): training the {len(todo)} runs "
                   "one after another")
            use_ray = False
        if use_ray and todo:
            if address is None:
                session.enter_context(_ray_session(None))
            result.engine = "ray"
            result.trained = _ray_sweep(todo, root_path, parallel, address, report, result, share_filesystem)
        else:
            result.trained = _sequential_sweep(todo, root_path, progress, report, result)
    _load_finished(resolved, root_path, result)
    result.wall_s = time.perf_counter() - start
    _report_end(result, report)
    return result


def _cached(config: TrainConfig, root: Path, is_cached: Callable, report: Callable[[str], None]) -> bool:
    if is_cached(config, root):
        report(f"[sweep] {_name(config)}: cached")
        return True
    return False


def _load_finished(resolved: dict[str, TrainConfig], root: Path, result: SweepResult) -> None:
    """``result.runs``: every run that did not fail, read back from the cache (keyed by the asked config's key)."""
    from lnlab.runs import CacheError, get_run

    failed = {f.config.key() for f in result.failures}
    for key, config in resolved.items():
        if config.key() in failed:
            continue
        try:
            result.runs[key] = get_run(config, root=root, train=False)
        except CacheError as exc:
            result.failures.append(Failure(config, _one_line(exc)))


def _name(config: TrainConfig) -> str:
    return f"{config.label()} · seed {config.seed} · {config.key()}"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _report_end(result: SweepResult, report: Callable[[str], None]) -> None:
    report(f"[sweep] {len(result.runs)} runs ready ({len(result.trained)} trained, engine {result.engine}) "
           f"in {result.wall_s:.0f} s; {len(result.failures)} failed")
    for failure in result.failures:
        report(f"[sweep] FAILED {_name(failure.config)}: {failure.error}")


# --------------------------------------------------------------------------- one after another


def _sequential_sweep(todo: list[TrainConfig], root: Path, progress: bool, report, result: SweepResult) -> list[str]:
    from lnlab.runs import get_run

    trained = []
    for i, config in enumerate(todo, 1):
        report(f"[sweep {i}/{len(todo)}] {_name(config)}: training")
        start = time.perf_counter()
        try:
            get_run(config, root=root, progress=progress)
        except KeyboardInterrupt:
            report(f"[sweep] interrupted: {len(trained)} finished runs kept in {root}; "
                   f"{len(todo) - len(trained)} not finished")
            raise
        except Exception as exc:  # noqa: BLE001 - a failing run must not stop the others
            result.failures.append(Failure(config, _one_line(exc), traceback.format_exc()))
            report(f"[sweep {i}/{len(todo)}] {_name(config)}: failed ({_one_line(exc)})")
            continue
        trained.append(config.key())
        report(f"[sweep {i}/{len(todo)}] {_name(config)}: trained in {time.perf_counter() - start:.0f} s")
    return trained


# --------------------------------------------------------------------------- Ray


@contextlib.contextmanager
def _ray_session(address: str | None) -> Iterator[None]:
    """Connect to ``address`` or start a local Ray instance (unless one is running); shut down what we started."""
    import ray

    if ray.is_initialized():
        yield
        return
    # A local instance detects the cores and GPUs itself (container limits included); its workers
    # inherit lnlab's locations (datasets, decoded-data cache).
    env = {k: v for k, v in os.environ.items() if k.startswith("LNLAB_") or k == "XDG_CACHE_HOME"}
    try:
        if address is not None:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env} if env else None)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
        raise ValueError(f"cannot start or reach {where} ({_one_line(exc)}); start one with `ray start --head`, "
                         "or sweep without --address") from None
    try:
        yield
    finally:
        ray.shutdown()


def _for_workers(config: TrainConfig) -> TrainConfig:
    """The config as a Ray worker must run it: ``auto`` resolved to what the workers have (a GPU if the
    cluster has one, else this machine's device), ``cuda:N`` to ``cuda`` (Ray picks each task's GPU).
    Neither changes the cache key where the device type stays the same."""
    if config.device.startswith("cuda:"):
        return config.replace(device="cuda")
    if config.device != "auto":
        return config
    try:
        import ray

        has_gpu = ray.cluster_resources().get("GPU", 0) > 0 if ray.is_initialized() else None
    except ImportError:
        has_gpu = None
    if has_gpu is None:
        import torch

        has_gpu = torch.cuda.is_available()
    return config.replace(device="cuda" if has_gpu else "cpu")


def _ray_sweep(todo: list[TrainConfig], root: Path, parallel: int, address: str | None, report,
               result: SweepResult, share_filesystem: bool | None) -> list[str]:
    import ray

    options = _task_options(todo, parallel)
    token_file = root / f".sweep-{uuid.uuid4().hex}"
    token = uuid.uuid4().hex
    if share_filesystem is not False:
        token_file.write_text(token)
    trained: list[str] = []
    pending: dict = {}
    count = lambda: len(trained) + len(result.failures) + 1  # noqa: E731
    try:
        for config in todo:
            opts, threads = options[config.device.startswith("cuda")]
            remote = ray.remote(max_retries=0)(_train_task).options(**opts)
            ref = remote.remote(config.to_dict(), config.key(), str(root), str(token_file), token, threads)
            pending[ref] = config
        gpu = any(c.device.startswith("cuda") for c in todo)
        at_once = f"{parallel} at once per GPU" if gpu else \
            f"{min(parallel, int(ray.cluster_resources().get('CPU', parallel)) // options[False][1])} at once"
        report(f"[sweep] {len(todo)} runs on Ray ({address or 'local instance'}), {at_once}; a line as each one ends")
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            _collect(done[0], pending.pop(done[0]), root, report, result, trained, count(), len(todo))
    except KeyboardInterrupt:
        ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0) if pending else ([], [])
        for ref in ready:  # finished while we were interrupted: keep them too
            _collect(ref, pending.pop(ref), root, report, result, trained, count(), len(todo))
        for ref in pending:
            ray.cancel(ref, force=True)
        report(f"[sweep] interrupted: {len(trained)} finished runs kept in {root}; {len(pending)} cancelled")
        raise
    finally:
        token_file.unlink(missing_ok=True)
    return trained


def _task_options(todo: list[TrainConfig], parallel: int) -> dict[bool, tuple[dict, int]]:
    """Ray resource requests and torch threads of a CPU run (key False) and a GPU run (key True).

    A GPU run asks for ``1/parallel`` of a GPU (rounded down to Ray's 1e-4 resolution, so ``parallel``
    of them fit on one GPU); a CPU run for ``cores // parallel`` cores of the largest node.
    Raises ValueError before anything starts if a GPU run meets a cluster without GPUs."""
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    node_cpus = int(max((n.get("CPU", 0) for n in nodes), default=1)) or 1
    node_gpus = int(max((n.get("GPU", 0) for n in nodes), default=0))
    if any(c.device.startswith("cuda") for c in todo) and node_gpus == 0:
        raise ValueError("these runs need a GPU (device cuda) but the Ray cluster has none; pass --device cpu "
                         "or --address of a cluster with GPUs")
    threads = max(1, node_cpus // parallel)
    gpu_threads = max(1, node_cpus // max(1, node_gpus * parallel))
    gpu_cpus = 1 if node_cpus >= node_gpus * parallel else 0
    return {False: ({"num_cpus": threads}, threads),
            True: ({"num_gpus": math.floor(10_000 / parallel) / 10_000, "num_cpus": gpu_cpus}, gpu_threads)}


def _collect(ref, config: TrainConfig, root: Path, report, result: SweepResult, trained: list[str],
             i: int, n: int) -> None:
    import ray

    try:
        payload = ray.get(ref)
        if payload["files"] is not None:
            _install(root, config, payload["files"])
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - RayTaskError wraps the worker's exception
        cause = getattr(exc, "cause", None) or exc
        text = getattr(exc, "traceback_str", None) or traceback.format_exc()
        result.failures.append(Failure(config, _one_line(cause), str(text)))
        report(f"[sweep {i}/{n}] {_name(config)}: failed ({_one_line(cause)})")
        return
    trained.append(config.key())
    how = "in the shared cache" if payload["files"] is None else "files copied back"
    report(f"[sweep {i}/{n}] {_name(config)}: trained in {payload['seconds']:.0f} s on {payload['host']} ({how})")


def _train_task(config_dict: dict, key: str, root: str, token_file: str, token: str, threads: int) -> dict:
    """A Ray task: train one run; return its files unless the caller's cache is this worker's too."""
    import torch

    from lnlab.runs import get_run
    from lnlab.store import CHECKPOINT, LOCK

    torch.set_num_threads(threads)
    config = TrainConfig.from_dict(config_dict)
    if config.key() != key:
        raise RuntimeError(f"this worker computes key {config.key()} for the run the caller calls {key}: "
                           "install the same lnlab version on every Ray node")
    start = time.perf_counter()
    host = socket.gethostname()
    if _sees(token_file, token):
        get_run(config, root=root, progress=False)
        return {"files": None, "seconds": time.perf_counter() - start, "host": host}
    with tempfile.TemporaryDirectory(prefix="lnlab-sweep-") as local:
        run = get_run(config, root=local, progress=False)
        files = {str(p.relative_to(run.directory)): p.read_bytes() for p in sorted(run.directory.rglob("*"))
                 if p.is_file() and p.name not in (LOCK, CHECKPOINT)}
    return {"files": files, "seconds": time.perf_counter() - start, "host": host}


def _sees(token_file: str, token: str) -> bool:
    try:
        return Path(token_file).read_text() == token
    except OSError:
        return False


def _install(root: Path, config: TrainConfig, files: dict[str, bytes]) -> None:
    """Put a worker's run files into the cache: staged beside the entry, verified against their manifest,
    then swapped in (:func:`lnlab.store.replace_folder`), so no result of older weights survives."""
    from lnlab.atomic import atomic_write_bytes
    from lnlab.store import load_run, replace_folder

    def fill(staging: Path) -> None:
        for name, data in files.items():
            path = Path(name)
            if path.is_absolute() or ".." in path.parts or not path.parts:
                raise ValueError(f"a worker sent a file named {name!r} for run {config.key()}; refused")
            atomic_write_bytes(staging / path, data)

    replace_folder(root / config.key(), fill, lambda staging: load_run(staging, config))
