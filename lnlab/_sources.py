"""Readers behind ``lnlab.data.load_dataset``: local packs, torchvision downloads, image folders.

Each reader returns ``(images uint8 (N, 3, 32, 32), labels int64 | None, classes | None)`` or
raises ``SourceUnavailable`` with a one-line reason. Anything written goes under
``lnlab.paths.cache_root()``; the dataset root is only read (packs may be read-only).
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from lnlab.atomic import atomic_write
from lnlab.paths import cache_root

Arrays = tuple[torch.Tensor, torch.Tensor | None, list[str] | None]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SIZE = 32


class SourceUnavailable(Exception):
    """A source could not provide the dataset; ``str(exc)`` is a short reason."""


# ----------------------------------------------------------------------------- helpers
def to_32(image: torch.Tensor) -> torch.Tensor:
    """uint8 (3, H, W) -> (3, 32, 32): short side to 32 (bilinear, antialias), centre crop.

    torchvision ``Resize(32) + CenterCrop(32)``, as in the paper's OOD pipelines.
    """
    from torchvision.transforms.v2 import functional as TF

    if tuple(image.shape[-2:]) != (SIZE, SIZE):
        image = TF.resize(image, SIZE, interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
        image = TF.center_crop(image, [SIZE, SIZE])
    return image


def pil_to_32(image: Image.Image) -> torch.Tensor:
    """Any PIL image -> uint8 (3, 32, 32) RGB."""
    from torchvision.transforms.v2 import functional as TF

    return to_32(TF.pil_to_tensor(image.convert("RGB")))


def _hwc_to_tensor(array: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) or (N, H, W) -> (N, 3, 32, 32) tensor, resizing if needed."""
    t = torch.from_numpy(np.ascontiguousarray(array))
    t = t.unsqueeze(-1).expand(*t.shape, 3) if t.ndim == 3 else t
    t = t.permute(0, 3, 1, 2).contiguous()
    if tuple(t.shape[-2:]) != (SIZE, SIZE):
        t = torch.stack([to_32(img) for img in t])
    return t


def _cached(key: str, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Load ``cache_root()/decoded/<key>.npz`` or build it, write it atomically and return it."""
    path = cache_root() / "decoded" / f"{key}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except Exception:  # corrupt cache: rebuild below
            pass
    arrays = build()
    try:
        atomic_write(path, lambda handle: np.savez(handle, **arrays))
    except OSError:  # an unwritable cache only costs speed
        pass
    return arrays


def _file_key(*parts: Any) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- packs
def decode_jpegs(blob: np.ndarray, offsets: np.ndarray, desc: str = "decoding JPEGs") -> np.ndarray:
    """Flat JPEG bytes + N+1 offsets (pack schema) -> uint8 (N, H, W, 3), decoded with Pillow.

    Serial on purpose: for 32x32 JPEGs a thread pool was slower (measured 1.9 s vs 1.2 s for 10k). The progress
    bar shows on a terminal only (``disable=None``): a command's stderr stays one line per error elsewhere.
    """
    from tqdm.auto import tqdm

    data = blob.tobytes()

    def one(i: int) -> np.ndarray:
        with Image.open(io.BytesIO(data[offsets[i] : offsets[i + 1]])) as im:
            return np.asarray(im.convert("RGB"))

    steps = tqdm(range(len(offsets) - 1), desc=desc, leave=False, disable=None)
    return np.stack([one(i) for i in steps])


def _pack_images(pack: Path, data: Any, key: str) -> np.ndarray:
    if key in data.files:
        return data[key]
    stat = pack.stat()
    cache_key = f"{pack.stem}-{key}-{_file_key(str(pack.resolve()), stat.st_size, stat.st_mtime_ns, key)}"
    return _cached(cache_key, lambda: {"x": decode_jpegs(data[f"{key}_jpeg"], data[f"{key}_offsets"], f"decoding {pack.name} {key} (once)")})["x"]


def read_pack(pack: Path, split: str) -> Arrays:
    """Images, labels and class names of ``split`` from a pack (``x_<split>`` or, for test, ``x``)."""
    if not pack.is_file():
        raise SourceUnavailable(f"no pack {pack}")
    with np.load(pack, allow_pickle=False) as data:
        names = set(data.files) | {f[: -len("_jpeg")] for f in data.files if f.endswith("_jpeg")}
        suffixes = [f"_{split}", ""] if split == "test" else [f"_{split}"]
        found = [s for s in suffixes if f"x{s}" in names]
        if not found:
            raise SourceUnavailable(f"pack {pack} has no 'x_{split}' array (keys: {sorted(data.files)})")
        s = found[0]
        images = _hwc_to_tensor(_pack_images(pack, data, f"x{s}"))
        labels = torch.from_numpy(data[f"y{s}"].astype(np.int64)) if f"y{s}" in data.files else None
        classes = [str(c) for c in data["classes"]] if "classes" in data.files else None
    return images, labels, classes


# ----------------------------------------------------------------------------- folders
def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def read_folder(folder: Path, labelled: bool) -> Arrays:
    """Every jpg/jpeg/png under ``folder`` (any depth, sorted by path), resized to 32x32.

    With ``labelled``, the first-level sub-folder names are the classes (``<folder>/<class>/...``).
    """
    files = _image_files(folder) if folder.is_dir() else []
    if not files:
        raise SourceUnavailable(f"no jpg/png images under {folder}")
    stats = [(str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    key = f"folder-{folder.name}-{_file_key(str(folder.resolve()), stats)}"

    def build() -> dict[str, np.ndarray]:
        from tqdm.auto import tqdm

        def one(p: Path) -> np.ndarray:
            with Image.open(p) as im:
                return pil_to_32(im).numpy()

        return {"x": np.stack([one(p) for p in tqdm(files, desc=f"reading {folder}", leave=False)])}

    images = torch.from_numpy(_cached(key, build)["x"])
    if not labelled:
        return images, None, None
    top = [p.relative_to(folder).parts[0] if len(p.relative_to(folder).parts) > 1 else "" for p in files]
    classes = sorted(set(top))
    labels = torch.tensor([classes.index(t) for t in top], dtype=torch.int64)
    return images, labels, classes


# ----------------------------------------------------------------------------- torchvision
def torchvision_call(cls_name: str, kwargs: dict[str, Any]) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return f"torchvision.datasets.{cls_name}(root, {args}, download=True)"


def _reachable(host: str, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _dataset_arrays(ds: Any) -> Arrays:
    """Images/labels of a torchvision dataset; fast path for the in-memory ones (CIFAR, SVHN, MNIST)."""
    data = getattr(ds, "data", None)
    targets = getattr(ds, "targets", getattr(ds, "labels", None))
    if isinstance(data, (np.ndarray, torch.Tensor)) and targets is not None:
        array = np.asarray(data)
        if array.ndim == 4 and array.shape[1] == 3:  # SVHN stores CHW
            array = array.transpose(0, 2, 3, 1)
        images = _hwc_to_tensor(array)
        labels = torch.as_tensor(np.asarray(targets), dtype=torch.int64)
    else:
        from tqdm.auto import tqdm

        pairs = [ds[i] for i in tqdm(range(len(ds)), desc=f"resizing {type(ds).__name__}", leave=False)]
        images = torch.stack([pil_to_32(im) for im, _ in pairs])
        labels = torch.tensor([int(t) for _, t in pairs], dtype=torch.int64)
    classes = list(getattr(ds, "classes", None) or []) or None
    return images, labels, classes


def read_torchvision(cls_name: str, calls: list[dict[str, Any]], host: str, target: Path) -> Arrays:
    """Load (downloading if needed) ``torchvision.datasets.<cls_name>(target, **kw)`` for each kw in ``calls``.

    Several calls are concatenated (e.g. DTD's three partitions). Fails fast when ``host`` is
    unreachable and nothing is downloaded yet; errors come back as one-line reasons.
    """
    import torchvision.datasets as tvd

    cls = getattr(tvd, cls_name)
    key = f"tv-{cls_name}-{_file_key(str(target), calls)}"

    def build() -> dict[str, np.ndarray]:
        parts = [_open_torchvision(cls, target, kw, host) for kw in calls]
        out = {"x": torch.cat([p[0] for p in parts]).numpy(), "y": torch.cat([p[1] for p in parts]).numpy()}
        if parts[0][2]:
            out["classes"] = np.asarray(parts[0][2])
        return out

    arrays = _cached(key, build)
    classes = [str(c) for c in arrays["classes"]] if "classes" in arrays else None
    return torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"]), classes


def _open_torchvision(cls: Any, target: Path, kwargs: dict[str, Any], host: str) -> Arrays:
    try:
        return _dataset_arrays(cls(str(target), download=False, **kwargs))
    except Exception:
        pass  # not downloaded yet
    if not _reachable(host):
        raise SourceUnavailable(f"cannot reach {host} (no network?)")
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)
    try:
        target.mkdir(parents=True, exist_ok=True)
        return _dataset_arrays(cls(str(target), download=True, **kwargs))
    except Exception as exc:  # one line, not torchvision's traceback
        raise SourceUnavailable(f"download failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
    finally:
        socket.setdefaulttimeout(old_timeout)


def download_dir(root: Path) -> Path:
    """Where torchvision downloads go: ``<root>/torchvision`` if writable, else the cache."""
    probe = root if root.exists() else root.parent
    if os.access(probe, os.W_OK):
        return root / "torchvision"
    return cache_root() / "torchvision"
