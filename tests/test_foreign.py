"""Your own network as a run (lnlab.foreign): the loading options, the input convention, the cache, and
every bad input answered with one line that says what to pass, before any long work."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from lnlab import foreign
from lnlab.cli import main
from lnlab.evaluate import eval_loader, predict
from lnlab.models import build_model
from lnlab.recorder import NormRecorder
from lnlab.splits import eval_set
from tests_support import requires_cifar10

pytestmark = [requires_cifar10, pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")]


class Tiny(nn.Module):
    """A small CNN taking images in [0, 1]; ``width`` outputs (10: CIFAR-10's classes)."""

    def __init__(self, width: int = 10, channels: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(channels, 8, 3, padding=1)
        self.fc = nn.Linear(8, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


class TupleOut(Tiny):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = torch.relu(self.conv(x)).mean((2, 3))
        return features, self.fc(features)


class DictOut(Tiny):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = torch.relu(self.conv(x)).mean((2, 3))
        return {"features": features, "logits": self.fc(features)}


class NaNOut(Tiny):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean((2, 3))) * float("nan")


class Flat28(nn.Module):
    """An MNIST-style MLP: 3×28×28 inputs only."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 28 * 28, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def _script(module: nn.Module, path) -> str:
    torch.jit.script(module.eval()).save(str(path))
    return str(path)


def _inspect(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["inspect", *argv, "--limit", "50", "--ood", "textures", "--no-progress"])
    out, err = capsys.readouterr()
    return rc, out, err


def _files(root) -> list[str]:
    return sorted(p.name for p in root.rglob("*.pt")) if root.exists() else []


@pytest.mark.parametrize("make, extra, message", [
    (lambda: Tiny(width=7), [], "returns 7 values per image, but the training set 'cifar10' has 10 classes; pass the "
                                "network trained on 'cifar10'"),
    (TupleOut, [], "returns a tuple (0: (2, 8), 1: (2, 10)); lnlab needs one tensor of raw logits (N, 10): element 1 "
                   "has that shape: pass element=1 (--element 1)"),
    (DictOut, [], "returns a dict ('features': (2, 8), 'logits': (2, 10)); lnlab needs one tensor of raw logits "
                  "(N, 10): element 'logits' has that shape: pass element='logits' (--element logits)"),
    (lambda: Tiny(channels=1), [], "fails on lnlab's input, float RGB images in [0, 1] of shape N×3×32×32"),
    (Flat28, [], "fails on lnlab's input, float RGB images in [0, 1] of shape N×3×32×32"),
    (NaNOut, [], "returns NaN or infinite logits"),
    (Tiny, ["--arch", "airnet"], "is a TorchScript file, which holds its architecture; drop arch= (--arch airnet)"),
])
def test_a_network_lnlab_cannot_use_is_refused_in_one_line_before_any_logits(tmp_path, capsys, make, extra, message):
    path = _script(make(), tmp_path / "net.pt")
    rc, _, err = _inspect(capsys, path, "--runs", str(tmp_path / "runs"), *extra)
    assert rc == 2 and err.startswith("lnlab: error: ") and err.count("\n") == 1, err
    assert message in err, err
    assert _files(tmp_path / "runs") == []  # refused before computing (or caching) any logits


@pytest.mark.parametrize("element", ["1", "logits"])
def test_element_picks_the_logits_of_a_tuple_or_dict(tmp_path, capsys, element):
    path = _script(TupleOut() if element == "1" else DictOut(), tmp_path / "net.pt")
    rc, out, err = _inspect(capsys, path, "--runs", str(tmp_path / "runs"), "--element", element)
    assert rc == 0, err
    assert "test accuracy" in out and "textures" in out and "MSP" in out


def _save(obj, path) -> str:
    torch.save(obj, path)
    return str(path)


@pytest.mark.parametrize("write, extra, message", [
    (lambda p: p.write_bytes(b"this is not a network" * 10) and str(p), [],
     "cannot load {path}: not a TorchScript file nor a torch.save file"),
    (lambda p: p.write_bytes(b"not a model file at all") and str(p), [],  # starts with "n", pickle's NEWOBJ
     "cannot load {path}: not a TorchScript file nor a torch.save file (it is neither a zip archive nor a pickle)"),
    (lambda p: _save(Tiny(), p), [],
     "{path} holds pickled Python objects that torch.load(weights_only=True) refuses (it holds"),
    (lambda p: p.write_bytes(pickle.dumps({"weights": [1.0]}, protocol=4)) and str(p), [],
     "{path} holds pickled Python objects that torch.load(weights_only=True) refuses (a plain pickle"),
    (lambda p: _save(build_model("airnet", 10, width=16).state_dict(), p), ["--arch", "airnet"],
     "the state_dict in {path} does not fit airnet with 10 classes: first mismatched key 'features.0.weight' "
     "(file [16, 3, 3, 3], architecture [32, 3, 3, 3])"),
    (lambda p: _save(build_model("fastnet", 10).state_dict(), p), ["--arch", "airnet"],
     "the state_dict in {path} does not fit airnet with 10 classes: first mismatched key 'features.2.weight' "
     "(missing from the file)"),  # airnet: conv, max-pool, BN; fastnet: conv, BN
    (lambda p: _save(build_model("fastnet", 10).state_dict(), p), [],
     "holds a state_dict ({tensors} tensors, first key 'features.0.weight') but no architecture; pass arch= (--arch)"),
    (lambda p: _save(build_model("fastnet", 10).state_dict(), p), ["--arch", "vgg_tiny"],
     "unknown architecture 'vgg_tiny'; pass one of lnlab's"),
    (lambda p: str(p), [], "no model file {path}; pass the path of a TorchScript file"),
])
def test_a_file_lnlab_cannot_load_is_refused_in_one_line(tmp_path, capsys, write, extra, message):
    path = write(tmp_path / "model.pt")
    rc, _, err = _inspect(capsys, path, "--runs", str(tmp_path / "runs"), *extra)
    assert rc == 2 and err.startswith("lnlab: error: ") and err.count("\n") == 1, err
    assert message.format(path=path, tensors=len(build_model("fastnet", 10).state_dict())) in err, err
    if "refuses" in message:
        assert "--unsafe-pickle" in err and "runs any code" in err


def test_the_pickle_weights_only_refuses_loads_only_behind_the_unsafe_opt_in(tmp_path, capsys):
    path = _save(Tiny(), tmp_path / "whole.pt")
    rc, _, err = _inspect(capsys, path, "--runs", str(tmp_path / "runs"), "--unsafe-pickle")
    assert rc == 0, err
    assert type(foreign.load_module(path, unsafe_pickle=True)) is Tiny


@pytest.mark.parametrize("argv, message", [
    (["--mean", "0.5", "0.5", "0.5", "--std", "0", "1", "1"], "mean and std take 3 numbers each (R, G, B; std > 0)"),
    (["--limit", "0"], "--limit takes a positive number of images per set"),
    (["--scores", "softmax"], "unknown score"),
    (["--ood", "no_such_set"], "not a registered dataset"),
    (["--ood", "test"], "['test'] cannot be OOD sets for dataset 'cifar10'"),
    (["--dataset", "textures"], "'textures' is an OOD set, not a training set"),
    (["--dataset", "tinyimagenet100", "--ood", "tinyimagenet"],
     "OOD set 'tinyimagenet' shares images and classes with the training set 'tinyimagenet100'"),
])
def test_bad_options_are_refused_before_the_file_is_read(tmp_path, capsys, argv, message):
    rc = main(["inspect", str(tmp_path / "never_read.pt"), *argv, "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("lnlab: error: ") and err.count("\n") == 1 and message in err, err


def test_the_python_api_refuses_the_same_networks(tmp_path):
    with pytest.raises(ValueError, match=r"element 1 has that shape"):
        foreign.adapt(TupleOut(), runs_root=tmp_path)
    with pytest.raises(ValueError, match=r"returns 7 values per image"):
        NormRecorder(Tiny(width=7), size=20)
    with pytest.raises(ValueError, match=r"mean and std take 3 numbers"):
        foreign.adapt(Tiny(), mean=(0.5, 0.5), std=(0.2, 0.2), runs_root=tmp_path)


@pytest.fixture(scope="module")
def shipped_ce():
    """The shipped laptop CE run (seed 0), which has float16 weights."""
    from lnlab.runs import get_run
    from lnlab.shipped import reference_config

    return get_run(reference_config(loss="ce", seed=0), train=False, progress=False)


def test_a_torchscript_export_of_a_shipped_run_reproduces_its_networks_logits(shipped_ce, tmp_path):
    path = foreign.export_torchscript(shipped_ce, tmp_path / "laptop_ce.pt")
    net = foreign.load_network(path, runs_root=tmp_path / "runs", limit=100, progress=False)
    assert net.config.label() == "laptop_ce" and net.has_weights and net.config.model == "TorchScript laptop_ce.pt"
    images = eval_set(net.config, "test").images
    assert len(images) == 100
    expected = predict(shipped_ce.model(), eval_loader(images, torch.device("cpu"), False))  # lnlab's own network
    assert torch.allclose(net.logits_for("test"), expected, atol=1e-4)
    assert torch.equal(net.labels, eval_set(net.config, "test").labels)
    assert net.test_acc > 0.6  # a trained CIFAR-10 network, read through the user's path

    # cached under the fingerprint of the weights and the set: a second adapter of the same file computes nothing
    again = foreign.load_network(path, runs_root=tmp_path / "runs", limit=100, progress=False)
    assert again.key == net.key and again.directory == net.directory
    again.network.forward = lambda x: pytest.fail("recomputed cached logits")
    assert torch.equal(again.logits_for("test"), net.logits_for("test"))
    # another normalisation is another network: another fingerprint
    other = foreign.load_network(path, runs_root=tmp_path / "runs", limit=100, progress=False, mean=(0.1, 0.1, 0.1))
    assert other.key != net.key


def test_state_dicts_load_for_lnlab_and_torchvision_architectures(tmp_path):
    import torchvision

    net = build_model("fastnet", 10, width=8)
    path = _save(net.state_dict(), tmp_path / "fastnet.pt")
    with pytest.raises(ValueError, match=r"first mismatched key 'features.0.weight' \(file \[8, 3, 3, 3\]"):
        foreign.load_module(path, arch="fastnet")
    loaded = foreign.load_module(path, arch="fastnet", width=8)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), net.state_dict().values()))

    resnet = torchvision.models.resnet18(num_classes=10)
    path = _save({"epoch": 3, "state_dict": resnet.state_dict()}, tmp_path / "resnet.pt")  # a training checkpoint
    with pytest.raises(ValueError, match=r"does not fit resnet18 with 10 classes: first mismatched key 'stem.0.w"):
        foreign.load_module(path, arch="resnet18")  # lnlab's CIFAR ResNet-18 is not torchvision's
    run = foreign.load_network(path, arch="torchvision:resnet18", mean=(0.485, 0.456, 0.406),
                               std=(0.229, 0.224, 0.225), limit=20, runs_root=tmp_path / "runs", progress=False)
    x = eval_set(run.config, "test").images
    with torch.no_grad():
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        expected = resnet.eval()((x.float() / 255 - mean) / std)
    assert torch.allclose(run.logits_for("test"), expected, atol=1e-4)
