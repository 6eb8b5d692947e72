"""A network lnlab did not train, end to end: a small CNN of this test's own design trained in a plain
PyTorch loop with the norm recorder, its recorded norms checked against norms computed here by hand,
saved as TorchScript and inspected with ``lnlab inspect --json``, whose numbers are checked against
scikit-learn's AUROC and an FPR95 computed here from the same network's logits."""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from torch import nn  # noqa: E402

from lnlab import plots, widgets  # noqa: E402
from lnlab.cli import main  # noqa: E402
from lnlab.data import balanced_subset, load_dataset  # noqa: E402
from lnlab.losses import logit_norm_loss  # noqa: E402
from lnlab.recorder import NormRecorder  # noqa: E402
from tests_support import requires_cifar10  # noqa: E402

pytestmark = [requires_cifar10, pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")]

MEAN, STD = (0.5, 0.45, 0.4), (0.25, 0.24, 0.26)  # this test's own normalisation: not lnlab's, not [0, 1]
SIZE, EPOCHS, TRAIN_IMAGES = 200, 3, 1000


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(12, 24, 3, padding=1), nn.BatchNorm2d(24), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(24, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(32, 10))


def _normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 -> this test's input, as ToTensor + Normalize(MEAN, STD) would make it."""
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (MEAN, STD))
    return (images.float() / 255 - mean) / std


def _by_hand(model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Logits in eval mode and the stats of their L2 norms, with numpy (not lnlab.evaluate.norm_stats)."""
    was = model.training
    model.eval()
    with torch.no_grad():
        logits = model(_normalise(images))
    model.train(was)
    norms = np.sqrt((logits.double().numpy() ** 2).sum(axis=1))
    return logits, {"mean": norms.mean(), "median": np.median(norms), "p10": np.percentile(norms, 10),
                    "p90": np.percentile(norms, 90)}


def _train(loss: str, epochs: int):
    """A plain loop (torch DataLoader, SGD) with the recorder called once per epoch; also computes by hand,
    after each epoch, the norms of the recorded subsets and the accuracy on the recorded test images."""
    train = load_dataset("cifar10", "train")
    keep = balanced_subset(train.labels, TRAIN_IMAGES // 10, 0)
    x, y = train.images[keep], train.labels[keep]
    model = _cnn()
    recorder = NormRecorder(model, sets={"train": (x, y), "test": "test", "textures": "textures"}, size=SIZE,
                            mean=MEAN, std=STD, name="CE" if loss == "ce" else "LogitNorm τ=0.04", loss=loss, tau=0.04,
                            seed=0)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(_normalise(x), y), batch_size=50, shuffle=True,
                                       generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    by_hand = []
    for epoch in range(1, epochs + 1):
        model.train()
        losses = []
        for xb, yb in data:
            out = model(xb)
            value = F.cross_entropy(out, yb) if loss == "ce" else logit_norm_loss(out, yb, 0.04)
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
            losses.append(value.item())
        recorder(epoch, train_loss=sum(losses) / len(losses))
        hand = {name: _by_hand(model, images) for name, images in recorder.images.items()}
        accuracy = float((hand["test"][0].argmax(1) == recorder.labels["test"]).double().mean())
        by_hand.append(({name: stats for name, (_, stats) in hand.items()}, accuracy))
    return model, recorder, by_hand


@pytest.fixture(scope="module")
def trained():
    return _train("ce", EPOCHS)


def test_recorded_norms_are_the_norms_computed_by_hand_on_the_same_subsets(trained):
    _, recorder, by_hand = trained
    assert [row["epoch"] for row in recorder.history] == list(range(1, EPOCHS + 1))
    assert {name: len(images) for name, images in recorder.images.items()} == {"train": SIZE, "test": SIZE,
                                                                                 "textures": SIZE}
    assert torch.equal(torch.bincount(recorder.labels["test"]), torch.full((10,), SIZE // 10))  # class-balanced
    for row, (stats, accuracy) in zip(recorder.history, by_hand):
        for name, values in stats.items():
            for stat, value in values.items():
                assert math.isclose(row[f"norm_{name}_{stat}"], value, rel_tol=1e-4), (row["epoch"], name, stat)
        assert row["test_acc"] == pytest.approx(accuracy, abs=1e-6)
    # the norms moved while training: the record is not of a frozen network
    assert recorder.history[0]["norm_train_mean"] != recorder.history[-1]["norm_train_mean"]


def test_recorded_history_has_the_trainers_columns_and_restores_train_mode(trained):
    from lnlab.evaluate import NORM_STATS

    model, recorder, _ = trained
    row = recorder.history[-1]
    expected = {f"norm_{name}_{stat}" for name in ("train", "test", "textures") for stat in NORM_STATS}
    seen = {f"seen_{name}_{stat}" for name in ("train", "test") for stat in NORM_STATS}  # as lnlab's trainer
    assert expected | seen | {"epoch", "train_loss", "test_acc", "seconds"} == set(row)
    assert row["seen_train_mean"] == pytest.approx(row["norm_train_mean"])  # CE sees the raw logits
    model.train()
    recorder(EPOCHS + 1)
    assert model.training  # the recorder evaluates in eval mode and leaves the loop's mode as it was
    recorder.history.pop()
    model.eval()
    recorder(EPOCHS + 1)
    assert not model.training
    recorder.history.pop()
    model.train()
    model[4].eval()  # a frozen batch norm, as some loops keep one
    recorder(EPOCHS + 1)
    assert model.training and not model[4].training
    recorder.history.pop()


def test_the_recorded_run_is_drawn_by_the_norm_figures_the_table_and_the_tau_explorer(trained, tmp_path):
    _, recorder, _ = trained
    ce = recorder.run(runs_root=tmp_path, progress=False)
    assert ce.history_sets == ["train", "test", "textures"] and ce.config.label() == "CE"
    fig = plots.plot_norm_vs_epoch({"CE": ce})  # paper Fig. 2, as notebook 01 draws it
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()][:3] == ["train (un-augmented subset)", "ID test",
                                                                          "OOD: textures"]
    line = fig.axes[0].get_lines()[0]
    assert list(line.get_ydata()) == [row["norm_train_mean"] for row in recorder.history]
    assert "CE: " in plots.plot_runs_norm_vs_epoch({"CE": ce}).get_suptitle()  # notebook 01's figure
    table = plots.norm_table({"CE": ce})
    assert table.loc[("CE", "test"), "last epoch"] == pytest.approx(recorder.history[-1]["norm_test_mean"], abs=1e-3)

    _, ln_recorder, _ = _train("logitnorm", 2)
    ln = ln_recorder.run(runs_root=tmp_path, progress=False)
    plots.plot_effective_norm({"CE": ce, "LogitNorm τ=0.04": ln})  # what the loss sees: 1/τ (Eq. 7)
    explorer = widgets.tau_explorer({"CE": ce, "LogitNorm τ=0.04": ln})
    assert f"test accuracy {100 * ln_recorder.history[-1]['test_acc']:.1f}%" in explorer.text


def _fpr95(id_scores: np.ndarray, ood_scores: np.ndarray) -> float:
    """FPR on OOD at the threshold that keeps 95% of ID (ID = positive class), written out here."""
    ranked = np.sort(id_scores)[::-1]
    threshold = ranked[math.ceil(0.95 * len(ranked)) - 1]  # the lowest score among the top 95% of ID
    return float((ood_scores >= threshold).mean())


def _ece(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    confidence, correct = probabilities.max(1), probabilities.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return total


def test_inspect_json_agrees_with_sklearn_on_the_same_networks_logits(trained, tmp_path, capsys):
    model, _, _ = trained
    path = tmp_path / "mine.pt"
    torch.jit.script(model.eval()).save(str(path))
    limit = 500
    argv = ["inspect", str(path), "--mean", *map(str, MEAN), "--std", *map(str, STD), "--limit", str(limit),
            "--ood", "textures", "mnist", "--scores", "msp", "energy", "--json", "--runs", str(tmp_path / "runs"),
            "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # one JSON object, nothing else on stdout
    result = json.loads(out)
    assert result["model"] == "mine" and result["dataset"] == "cifar10"

    scripted = torch.jit.load(str(path))
    test = load_dataset("cifar10", "test")
    keep = balanced_subset(test.labels, limit // 10, 0)  # --limit: class-balanced test subset, seeded
    with torch.no_grad():
        logits = {"test": scripted(_normalise(test.images[keep]))}
        for name in ("textures", "mnist"):
            logits[name] = scripted(_normalise(load_dataset(name, n=limit, seed=0).images))
    labels = test.labels[keep].numpy()
    probabilities = torch.softmax(logits["test"].double(), 1).numpy()
    assert result["accuracy"] == pytest.approx(100 * (probabilities.argmax(1) == labels).mean(), abs=1e-6)
    assert result["ece"] == pytest.approx(100 * _ece(probabilities, labels), abs=1e-3)
    scores = {"msp": lambda f: torch.softmax(f.double(), 1).amax(1).numpy(),
              "energy": lambda f: torch.logsumexp(f.double(), 1).numpy()}
    for name in ("textures", "mnist"):
        for score, of in scores.items():
            id_scores, ood_scores = of(logits["test"]), of(logits[name])
            is_id = np.r_[np.ones(len(id_scores)), np.zeros(len(ood_scores))]
            auroc = roc_auc_score(is_id, np.r_[id_scores, ood_scores])
            got = result["ood"][name][score]
            assert got["auroc"] == pytest.approx(100 * auroc, abs=0.01), (name, score)
            assert got["fpr95"] == pytest.approx(100 * _fpr95(id_scores, ood_scores), abs=0.21), (name, score)
            assert 0 <= got["aupr_in"] <= 100


def test_the_recorder_records_the_norm_logitnorm_and_elogitnorm_see():
    model = _cnn()
    x = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8)
    y = torch.arange(40) % 10
    for loss, check in (("logitnorm", lambda row: row["seen_train_mean"] == pytest.approx(1 / 0.02, rel=1e-5)),
                        ("elogitnorm", lambda row: row["seen_test_mean"] != pytest.approx(row["norm_test_mean"]))):
        recorder = NormRecorder(model, sets={"train": (x, y), "test": (x, y)}, size=40, loss=loss, tau=0.02)
        assert check(recorder(1))
