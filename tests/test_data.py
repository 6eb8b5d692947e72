"""lnlab.data: packs, synthetic sets, source resolution, clear errors, the device loader."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import lnlab
from lnlab import _sources
from lnlab.data import (
    CIFAR_MEAN,
    CIFAR_STD,
    DATASETS,
    DatasetNotFoundError,
    ImageSet,
    Loader,
    available_datasets,
    load_dataset,
    normalize,
)

SHARED = Path(os.environ.get("LNLAB_DATA", "/nonexistent"))
PACKS = sorted(p.stem for p in SHARED.glob("*.npz") if p.stem in DATASETS)
needs_cifar10 = pytest.mark.skipif(not (SHARED / "cifar10.npz").is_file(), reason="no cifar10 pack in LNLAB_DATA")


@pytest.fixture(scope="module")
def cifar10_train() -> ImageSet:
    if not (SHARED / "cifar10.npz").is_file():
        pytest.skip("no cifar10 pack in LNLAB_DATA")
    return load_dataset("cifar10", "train")


@pytest.fixture(scope="module")
def small(cifar10_train: ImageSet) -> tuple[torch.Tensor, torch.Tensor]:
    return cifar10_train.images[::50].clone(), cifar10_train.labels[::50].clone()  # 1,000 images, 100 per class


@pytest.fixture()
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may touch the network: the download host always looks unreachable."""
    monkeypatch.setattr(_sources, "_reachable", lambda host, timeout=3.0: False)


# ----------------------------------------------------------------------------- packs
@pytest.mark.parametrize("name", PACKS)
def test_every_shared_pack_loads_with_documented_shapes(name: str) -> None:
    for split in DATASETS[name].splits:
        images, labels, classes = load_dataset(name, split)
        assert images.dtype == torch.uint8 and images.ndim == 4 and images.shape[1:] == (3, 32, 32)
        assert images.shape[0] > 0 and images.float().std() > 10  # real images, not blank
        assert labels is None or (labels.dtype == torch.int64 and labels.shape == (images.shape[0],))
        if classes is not None:
            assert all(isinstance(c, str) for c in classes) and int(labels.max()) < len(classes)


@needs_cifar10
def test_cifar10_counts_and_classes(cifar10_train: ImageSet) -> None:
    test = load_dataset("cifar10", "test")
    assert torch.bincount(cifar10_train.labels).tolist() == [5000] * 10
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert test.classes[:3] == ["airplane", "automobile", "bird"] and len(test.classes) == 10
    assert test.source.startswith("pack:") and test.split == "test"
    mean = cifar10_train.images.float().mean(dim=(0, 2, 3)) / 255
    assert torch.allclose(mean, torch.tensor(CIFAR_MEAN), atol=0.005)


def test_n_gives_a_seeded_subset_of_real_images() -> None:
    if "textures" not in PACKS:
        pytest.skip("no textures pack")
    a, b, c = (load_dataset("textures", n=100, seed=s).images for s in (1, 1, 2))
    assert a.shape[0] == 100 and torch.equal(a, b) and not torch.equal(a, c)
    assert load_dataset("textures", n=10**6).images.shape[0] == 1200  # n is an upper bound


# ----------------------------------------------------------------------------- synthetic
@pytest.mark.parametrize("name", ["gaussian", "uniform"])
def test_synthetic_sets_are_seeded(name: str) -> None:
    a, b, c = (load_dataset(name, n=64, seed=s) for s in (3, 3, 4))
    assert a.images.shape == (64, 3, 32, 32) and a.images.dtype == torch.uint8 and a.labels is None
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert load_dataset(name).images.shape[0] == 10_000


def test_synthetic_distributions() -> None:
    # gaussian / gaussian_val: clip(N(0, 0.5^2), -1, 1) in the normalised input space (OE code); the reference
    # statistics come from numpy directly, the tolerance covers the 1/255 quantisation of the stored pixels
    reference = np.clip(0.5 * np.random.default_rng(0).standard_normal(2_000_000), -1, 1)
    for name in ("gaussian", "gaussian_val"):
        z = normalize(load_dataset(name, n=500).images)
        assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - reference.std()) < 0.01, name
        assert abs(float((z.abs() > 0.98).float().mean()) - float((np.abs(reference) > 0.98).mean())) < 0.006, name
    assert not torch.equal(load_dataset("gaussian", n=50).images, load_dataset("gaussian_val", n=50).images)
    g = load_dataset("gaussian_pixel", n=500).images.float() / 255
    u = load_dataset("uniform", n=500).images.float() / 255
    # clip(N(0.5, 0.25^2), 0, 1): clipping at +-2 sigma leaves std 0.25 * 0.9597 and 2.3% at each end
    assert abs(g.mean() - 0.5) < 0.01 and abs(g.std() - 0.2399) < 0.004
    assert abs((g == 0).float().mean() - 0.0228) < 0.004 and abs((g == 1).float().mean() - 0.0228) < 0.004
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.std() - 12 ** -0.5) < 0.01 and u.min() == 0 and u.max() == 1


# ----------------------------------------------------------------------------- resolution order
def _png(path: Path, size: tuple[int, int], color: tuple[int, int, int], fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, fmt)


def _tiny_pack(path: Path, value: int) -> None:
    x = np.full((4, 32, 32, 3), value, np.uint8)
    np.savez(path, x_train=x, y_train=np.array([0, 1, 0, 1]), x_test=x[:2], y_test=np.array([1, 0]),
             classes=np.array(["cat", "dog"]))


def test_pack_wins_then_folder_is_used_and_resized(tmp_path: Path, offline: None) -> None:
    _png(tmp_path / "cifar10" / "test" / "cat" / "a.png", (64, 48), (255, 0, 0))
    _png(tmp_path / "cifar10" / "test" / "dog" / "deep" / "b.jpg", (20, 40), (0, 0, 255), "JPEG")
    _tiny_pack(tmp_path / "cifar10.npz", value=7)
    from_pack = load_dataset("cifar10", "test", root=tmp_path)
    assert from_pack.source.startswith("pack:") and from_pack.images.shape == (2, 3, 32, 32)
    assert int(from_pack.images.max()) == 7 and from_pack.labels.tolist() == [1, 0] and from_pack.classes == ["cat", "dog"]

    (tmp_path / "cifar10.npz").unlink()
    images, labels, classes = load_dataset("cifar10", "test", root=tmp_path)
    assert images.shape == (2, 3, 32, 32) and classes == ["cat", "dog"] and labels.tolist() == [0, 1]
    assert images[0, 0].float().mean() > 250 and images[0, 2].float().mean() < 5  # red PNG
    assert images[1, 2].float().mean() > 240  # blue JPEG, any depth


def test_ood_folder_any_depth_unlabelled(tmp_path: Path, offline: None) -> None:
    for i in range(3):
        _png(tmp_path / "isun" / "a" / f"b{i}" / f"{i}.jpeg", (36, 36), (10 * i, 0, 0), "JPEG")
    data = load_dataset("isun", root=tmp_path)
    assert data.images.shape == (3, 3, 32, 32) and data.labels is None and data.source.startswith("folder:")


def test_jpeg_pack_decodes_like_pillow_and_is_cached_outside_the_read_only_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(0)
    blobs = []
    for _ in range(3):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, "JPEG")
        blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
    root, cache = tmp_path / "packs", tmp_path / "cache"
    root.mkdir()
    np.savez(root / "svhn.npz", x_jpeg=np.concatenate(blobs), x_offsets=np.cumsum([0] + [len(b) for b in blobs]))
    root.chmod(0o555)
    before = sorted(p.name for p in root.iterdir())
    monkeypatch.setenv("LNLAB_CACHE", str(cache))
    try:
        first = load_dataset("svhn", root=root)
        monkeypatch.setattr(_sources, "decode_jpegs", lambda *a, **k: pytest.fail("decoded twice"))
        second = load_dataset("svhn", root=root)
    finally:
        root.chmod(0o755)
    expected = np.stack([np.asarray(Image.open(io.BytesIO(b.tobytes())).convert("RGB")) for b in blobs])
    assert torch.equal(first.images, torch.from_numpy(expected).permute(0, 3, 1, 2))
    assert torch.equal(first.images, second.images) and first.labels is None and first.classes is None
    assert sorted(p.name for p in root.iterdir()) == before  # nothing written next to the pack
    assert list((cache / "decoded").glob("svhn-x-*.npz"))


def test_torchvision_source_with_a_fake_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The torchvision path: download=False first, then download=True; large images resized."""
    import torchvision.datasets

    calls = []

    class FakeDTD:
        classes = ["banded", "dotted"]

        def __init__(self, root: str, download: bool, split: str) -> None:
            calls.append((root, download, split))
            if not download:
                raise RuntimeError("Dataset not found. You can use download=True to download it")

        def __len__(self) -> int:
            return 2

        def __getitem__(self, i: int) -> tuple[Image.Image, int]:
            return Image.new("RGB", (120, 90), (0, 200, 0)), i

    monkeypatch.setattr(torchvision.datasets, "DTD", FakeDTD)
    monkeypatch.setattr(_sources, "_reachable", lambda host, timeout=3.0: True)
    monkeypatch.setenv("LNLAB_CACHE", str(tmp_path / "cache"))
    data = load_dataset("textures", root=tmp_path / "data")
    assert data.source == "torchvision:DTD" and data.images.shape == (6, 3, 32, 32) and data.classes == FakeDTD.classes
    assert [c[1:] for c in calls] == [(False, "train"), (True, "train"), (False, "val"), (True, "val"),
                                      (False, "test"), (True, "test")]
    assert calls[0][0] == str(tmp_path / "data" / "torchvision")
    assert int(data.images[:, 1].min()) >= 195


# ----------------------------------------------------------------------------- errors
def test_missing_dataset_offline_gives_one_clear_error(tmp_path: Path, offline: None) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("svhn", root=tmp_path)
    msg = str(info.value)
    for part in ["'svhn'", str(tmp_path / "svhn.npz"), "torchvision.datasets.SVHN", "cannot reach",
                 "download=True", str(tmp_path / "svhn"), "LNLAB_DATA"]:
        assert part in msg, part
    assert "\n" not in msg and info.value.__cause__ is None and info.value.__suppress_context__
    assert isinstance(info.value, FileNotFoundError)


def test_download_failure_is_reported_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets

    def broken(*args, **kwargs):
        raise OSError("first line of a long error\n" + "Traceback noise\n" * 50)

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", broken)
    monkeypatch.setattr(_sources, "_reachable", lambda host, timeout=3.0: True)
    with pytest.raises(DatasetNotFoundError, match="download failed: OSError: first line of a long error") as info:
        load_dataset("cifar100", "train", root=tmp_path)
    assert "Traceback noise" not in str(info.value) and "cifar100/train/<class>" in str(info.value)


def test_unknown_name_and_bad_split() -> None:
    with pytest.raises(DatasetNotFoundError, match="'cifar11' is not a registered dataset.*cifar100, svhn"):
        load_dataset("cifar11")  # an unregistered name is looked up as the user's own OOD set
    with pytest.raises(DatasetNotFoundError, match="unknown dataset 'cifar11'.*cifar10"):
        load_dataset("cifar11", "train")  # the training split: a user's own training set, not found
    with pytest.raises(ValueError, match="splits \\['test'\\]"):
        load_dataset("svhn", "train")
    with pytest.raises(ValueError, match="splits"):
        load_dataset("cifar10", "val")


def test_available_datasets_lists_every_name() -> None:
    table = lnlab.available_datasets()
    names = [row["name"] for row in table]
    assert names == list(DATASETS) and {"lsun-c", "lsun-r", "isun", "places365", "tinyimagenet"} <= set(names)
    rows = {row["name"]: row for row in table}
    assert rows["gaussian"]["present"] == "synthetic" and rows["cifar100"]["ood"] and not rows["cifar10"]["ood"]
    for name in PACKS:
        assert rows[name]["present"] == "pack"
    text = str(table)
    assert all(name in text for name in names) and "missing" in text


# ----------------------------------------------------------------------------- loader
def loader_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order a shuffling loader uses, recovered by passing the indices themselves as labels."""
    probe = Loader(torch.zeros(n, 3, 1, 1, dtype=torch.uint8), torch.arange(n), batch_size=n, shuffle=True, seed=seed)
    probe.set_epoch(epoch)
    return next(iter(probe))[1]


def epoch_batches(loader: Loader, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
    loader.set_epoch(epoch)
    xs, ys = zip(*loader)
    return torch.cat(xs), torch.cat(ys)


def test_loader_without_augmentation_is_plain_normalization(small: tuple[torch.Tensor, torch.Tensor]) -> None:
    images, labels = small
    loader = Loader(images, labels, batch_size=300, shuffle=True, seed=5)
    xs, ys = zip(*loader)
    assert len(loader) == 4 and loader.num_samples == 1000 and [len(y) for y in ys] == [300, 300, 300, 100]
    x, y = torch.cat(xs), torch.cat(ys)
    assert x.dtype == torch.float32 and x.shape == (1000, 3, 32, 32) and y.dtype == torch.int64
    order = loader_order(1000, seed=5, epoch=0)
    assert not torch.equal(order, torch.arange(1000)) and torch.equal(order.sort().values, torch.arange(1000))
    assert torch.equal(x, normalize(images)[order]) and torch.equal(y, labels[order])
    manual = (images.float() / 255 - torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)) / torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    assert torch.allclose(normalize(images), manual, atol=1e-5)
    assert loader.epoch == 1  # advanced after a complete pass
    assert torch.equal(epoch_batches(Loader(images, labels, 128), 3)[0], normalize(images))  # no shuffle: in order


def test_loader_augmentation(small: tuple[torch.Tensor, torch.Tensor]) -> None:
    images, labels = small
    make = lambda seed: Loader(images, labels, batch_size=256, shuffle=True, augment=True, seed=seed)  # noqa: E731
    x0, y0 = epoch_batches(make(1), 0)
    assert x0.shape == (1000, 3, 32, 32) and x0.dtype == torch.float32
    plain = normalize(images)[loader_order(1000, 1, 0)]
    changed = (x0 != plain).flatten(1).any(1)
    assert changed.float().mean() > 0.8  # 1 - P(no shift, no flip) = 1 - 1/162
    assert torch.equal(y0, labels[loader_order(1000, 1, 0)])
    assert torch.equal(x0, epoch_batches(make(1), 0)[0])  # identical seeds -> identical batches
    assert not torch.equal(x0, epoch_batches(make(2), 0)[0])
    loader = make(1)
    assert not torch.equal(x0, epoch_batches(loader, 1)[0])  # another epoch
    assert torch.equal(x0, epoch_batches(loader, 0)[0])  # set_epoch replays epoch 0 exactly
    zero = float(normalize(torch.zeros(1, 3, 1, 1, dtype=torch.uint8)).min())
    assert bool((x0 <= zero + 1e-6).any())  # zero padding shows up


def test_crop_flip_matches_a_per_sample_reference() -> None:
    from lnlab._loader import crop_flip

    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (20, 3, 32, 32), generator=gen, dtype=torch.uint8)
    dy, dx = torch.randint(0, 9, (2, 20), generator=gen)
    flip = torch.randint(0, 2, (20,), generator=gen).bool()
    out = crop_flip(x, dy, dx, flip)
    padded = F.pad(x, (4, 4, 4, 4))
    for i in range(20):
        ref = padded[i, :, dy[i] : dy[i] + 32, dx[i] : dx[i] + 32]
        assert torch.equal(out[i], ref.flip(-1) if flip[i] else ref)


def test_subset_per_class_balanced_and_seeded(small: tuple[torch.Tensor, torch.Tensor]) -> None:
    images, labels = small
    a = Loader(images, labels, batch_size=64, subset_per_class=7, seed=0)
    b = Loader(images, labels, batch_size=64, subset_per_class=7, seed=0)
    c = Loader(images, labels, batch_size=64, subset_per_class=7, seed=1)
    assert a.num_samples == 70 and torch.bincount(a.labels).tolist() == [7] * 10 and len(a) == 2
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    with pytest.raises(ValueError, match="subset_per_class <= 100"):
        Loader(images, labels, batch_size=64, subset_per_class=101)


def test_loader_unlabelled_drop_last_and_imageset() -> None:
    noise = load_dataset("gaussian", n=100)
    loader = Loader(noise, batch_size=32, drop_last=True, channels_last=True)
    batches = list(loader)
    assert len(loader) == len(batches) == 3 and all(y is None for _, y in batches)
    assert batches[0][0].is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(ValueError, match="uint8 images"):
        Loader(noise.images.float(), batch_size=8)
