"""Training engine: config validation and key, lr schedule, the ci profile's behaviour, divergence.

Tests marked ``slow`` train on the real CIFAR-10 pack (``$LNLAB_DATA``); the ci-profile pair is
trained once per session (or reused from ``$LNLAB_RUNS``) and shared with the notebooks.
"""

from __future__ import annotations

import math
import os

import pytest
import torch

from lnlab.config import TrainConfig
from lnlab.losses import lower_bound
from lnlab.profiles import PROFILES, make_config
from lnlab.train import TrainingDivergedError, lr_factor, train
from tests_support import TINY, ci_pair, requires_cifar10


# ---------------------------------------------------------------------- config
@pytest.mark.parametrize("overrides, message", [
    ({"loss": "logitnorm", "tau": 0.0}, "tau"),
    ({"loss": "logitnorm", "tau": -1.0}, "tau"),
    ({"loss": "logitnorm", "tau": float("nan")}, "tau"),
    ({"epochs": 0}, "epochs"),
    ({"dataset": "imagenet"}, "dataset.*cifar10"),
    ({"model": "vgg"}, "model.*fastnet"),
    ({"loss": "focal"}, "loss.*logitnorm"),
    ({"schedule": "exponential"}, "schedule.*cosine.*linear"),
    ({"ood": ("mnist", "cifar10")}, "cannot be OOD sets.*svhn"),
    ({"device": "tpu"}, "device"),
    ({"lr": 0.0}, "lr"),
    ({"warmup_epochs": 500}, "warmup_epochs"),
    ({"milestones": (0.7, 0.4)}, "milestones"),
    ({"subset_per_class": 0}, "subset_per_class"),
    ({"model_depth": 3}, "model_depth"),
])
def test_invalid_config_raises_before_any_work(overrides, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**overrides)


def test_defaults_follow_the_official_code():
    c = TrainConfig()
    assert (c.model, c.epochs, c.batch_size, c.lr, c.momentum, c.weight_decay) == ("wrn40_2", 200, 128, 0.1, 0.9, 5e-4)
    assert c.schedule == "step" and c.milestones == (0.4, 0.7) and c.gamma == 0.1 and not c.nesterov
    paper = make_config("paper")
    assert paper.model == "wrn40_2" and paper.epochs == 200 and paper.subset_per_class is None


def test_key_depends_only_on_result_changing_fields():
    base = make_config("ci")
    assert base.key() == make_config("ci").key()
    assert base.key() == make_config("ci", data_root="/elsewhere").key()
    assert base.key() != make_config("ci", lr=0.05).key()
    assert base.key() != make_config("ci", loss="logitnorm").key()
    # tau does not matter for CE (a tau sweep shares one CE run); it does for LogitNorm
    assert make_config("ci", tau=0.01).key() == make_config("ci", tau=0.1).key()
    assert make_config("ci", loss="logitnorm", tau=0.01).key() != make_config("ci", loss="logitnorm", tau=0.1).key()
    assert make_config("ci", warmup_epochs=1).key() == make_config("ci", warmup_epochs=1.0).key()
    # amp is hashed on every device (bf16 autocast on CPUs too, engine version 3)
    assert make_config("ci", device="cpu", amp=False).key() != make_config("ci", device="cpu", amp=True).key()


def test_config_round_trips_through_a_dict():
    config = make_config("ci", loss="logitnorm", tau=0.02)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown TrainConfig field"):
        TrainConfig.from_dict({**config.to_dict(), "learning_rate": 0.1})


def test_make_config_rejects_unknown_profile_and_field():
    with pytest.raises(ValueError, match="ci.*quick.*paper"):
        make_config("huge")
    with pytest.raises(ValueError, match="valid fields"):
        make_config("ci", learning_rate=0.1)
    assert set(PROFILES) == {"ci", "quick", "laptop", "paper"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_fails_before_loading_data():
    with pytest.raises(ValueError, match="no CUDA GPU"):
        train(make_config("ci", device="cuda"), progress=False)


# ---------------------------------------------------------------------- schedule
def test_step_schedule_has_multistep_semantics_at_40_and_70_percent():
    factor = lr_factor(TrainConfig(epochs=200), steps_per_epoch=10)
    assert factor(0) == 1 and factor(799) == 1  # epochs 1..80
    assert math.isclose(factor(800), 0.1) and math.isclose(factor(1399), 0.1)  # epochs 81..140
    assert math.isclose(factor(1400), 0.01) and math.isclose(factor(1999), 0.01)


def test_warmup_is_linear_per_step_then_cosine_decays_to_zero():
    factor = lr_factor(TrainConfig(epochs=10, warmup_epochs=2, schedule="cosine"), steps_per_epoch=5)
    warm = [factor(s) for s in range(10)]
    assert warm == pytest.approx([(s + 1) / 10 * 0.5 * (1 + math.cos(math.pi * s / 50)) for s in range(10)])
    assert factor(49) < 0.01 and factor(25) == pytest.approx(0.5)


def test_linear_schedule_warms_up_then_falls_on_a_straight_line_to_zero():
    """The laptop recipe: warm-up over 1 epoch, then lr × (1 − (step − warm-up) / (total − warm-up))."""
    factor = lr_factor(TrainConfig(epochs=10, warmup_epochs=1, schedule="linear"), steps_per_epoch=4)
    assert [factor(s) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert [factor(s) for s in range(4, 40, 9)] == pytest.approx([1 - (s - 4) / 36 for s in range(4, 40, 9)])
    assert factor(40) == 0.0 and factor(22) == pytest.approx(0.5)


# ---------------------------------------------------------------------- divergence
@requires_cifar10
def test_nan_loss_raises_a_clear_error_naming_the_epoch(tmp_path):
    config = make_config("ci", **{**TINY, "lr": 1e6, "warmup_epochs": 0})
    with pytest.raises(TrainingDivergedError, match=r"epoch 1, step \d+/\d+.*lower lr.*warm"):
        train(config, checkpoint_path=tmp_path / "checkpoint.pt", progress=False)
    assert not (tmp_path / "checkpoint.pt").exists()  # no epoch completed


@requires_cifar10
def test_divergence_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    import lnlab.train as train_module

    config = make_config("ci", **{**TINY, "loss": "logitnorm"})
    from lnlab.losses import LogitNormTrainingLoss

    real = LogitNormTrainingLoss.forward

    def nan_in_epoch_2(self, logits, targets, head=None):
        loss = real(self, logits, targets, head)
        return loss * float("nan") if torch.initial_seed() == train_module.epoch_seed(config.seed, 2) else loss

    monkeypatch.setattr(LogitNormTrainingLoss, "forward", nan_in_epoch_2)
    path = tmp_path / "checkpoint.pt"
    with pytest.raises(TrainingDivergedError, match="epoch 2.*tau"):
        train(config, checkpoint_path=path, progress=False)
    state = torch.load(path, weights_only=True)
    assert state["epoch"] == 1 and len(state["history"]) == 1


# ---------------------------------------------------------------------- ci profile (slow)
@pytest.fixture(scope="module")
def ci_runs(tmp_path_factory):
    return ci_pair(tmp_path_factory)


@pytest.mark.slow
def test_ci_ce_mean_train_logit_norm_rises(ci_runs):
    norms = ci_runs["ce"].history_frame()["norm_train_mean"]
    assert norms.iloc[-1] > 1.2 * norms.iloc[0], norms.tolist()


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["ce", "logitnorm"])
def test_ci_runs_beat_chance_by_a_wide_margin(ci_runs, loss):
    assert ci_runs[loss].test_acc > 0.35  # chance: 0.10


@pytest.mark.slow
def test_ci_history_has_every_column_and_logits_every_set(ci_runs):
    run = ci_runs["logitnorm"]
    frame = run.history_frame()
    assert list(frame.index) == list(range(1, run.config.epochs + 1))
    splits = ["train", "test", *run.config.ood]
    expected = {"lr", "seconds", "train_loss", "train_acc", "test_loss", "test_acc"}
    expected |= {f"norm_{s}_{q}" for s in splits for q in ("mean", "median", "p10", "p90")}
    assert expected <= set(frame.columns)
    assert set(run.logits) == {"test", *run.config.ood}
    assert run.logits["test"].shape == (len(run.labels), 10) and run.logits["test"].dtype == torch.float32
    # norms in the history are the norms of the final logits
    final = torch.linalg.vector_norm(run.logits["test"], dim=1).mean()
    assert float(final) == pytest.approx(frame["norm_test_mean"].iloc[-1], rel=1e-5)


@pytest.mark.slow
def test_ci_logitnorm_loss_stays_above_its_lower_bound(ci_runs):
    """Paper Prop. 3: the LogitNorm loss is bounded below by log(1 + (k-1) exp(-2/tau))."""
    run = ci_runs["logitnorm"]
    assert run.final_train_loss >= lower_bound(run.config.tau, 10)
    assert run.history_frame()["test_loss"].iloc[-1] >= lower_bound(run.config.tau, 10)


def test_step_milestones_never_apply_before_the_first_epoch_ends():
    factor = lr_factor(TrainConfig(epochs=1), steps_per_epoch=10)
    assert [factor(s) for s in range(10)] == [1.0] * 10
