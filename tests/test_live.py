"""The live norm view (lnlab.live): its lines follow training epoch by epoch, and a cached run draws the same."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lnlab.live import LiveNormView
from lnlab.profiles import make_config
from tests_support import requires_cifar10

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SPLITS = ("train", "test", "textures")


def expected_lines(history: list[dict]) -> dict[str, tuple[list[int], list[float]]]:
    epochs = [row["epoch"] for row in history]
    return {split: (epochs, [row[f"norm_{split}_mean"] for row in history]) for split in SPLITS}


@requires_cifar10
def test_view_follows_training_epoch_by_epoch_and_a_cached_run_draws_the_same(tmp_path):
    config = make_config("ci", epochs=2, subset_per_class=50, test_subset_per_class=20, ood_limit=50)
    label, other = config.label(), "LogitNorm τ=0.04"
    view = LiveNormView([label, other], ood="textures", epochs=config.epochs, render=True)
    seen = []  # after each epoch (the view's callback runs first): what the view shows

    def look(epoch, row):
        seen.append((epoch, view.lines(label), view.redraws, view.title(label), view.png))

    run = view.get_run(config, root=tmp_path, progress=False, callbacks=[look])  # trains: not cached
    assert not run.from_cache and len(seen) == config.epochs
    for epoch, lines, redraws, title, png in seen:
        assert lines == expected_lines(run.history[:epoch])  # exactly the history's values, nothing more
        assert redraws == epoch  # one redraw per epoch
        acc = 100 * run.history[epoch - 1]["test_acc"]
        assert f"training: epoch {epoch}/{config.epochs}, test acc {acc:.1f}%" in title and "seed 0" in title
        assert png.startswith(PNG_SIGNATURE)
    assert view.title(other).endswith("not started yet") and view.lines(other)["train"] == ([], [])
    assert view.redraws == config.epochs + 1  # + the whole history once get_run returns
    assert view.title(label).endswith(f"{config.epochs} epochs, test acc {acc:.1f}%")

    cached_view = LiveNormView([label, other], render=True)  # OOD set: the first one in the history
    cached = cached_view.get_run(config, root=tmp_path, progress=False)
    assert cached.from_cache and cached.history == run.history
    assert cached_view.ood == config.ood[0] == "textures"
    assert cached_view.lines(label) == view.lines(label) == expected_lines(run.history)
    assert cached_view.redraws == 1 and cached_view.title(label) == view.title(label)


def fake_row(epoch: int, scale: float = 1.0) -> dict:
    return {"epoch": epoch, "test_acc": 0.5, "norm_train_mean": scale * 2.0 * epoch, "norm_test_mean": scale,
            "norm_val_mean": 9.0, "norm_gaussian_val_mean": 9.0, "norm_mnist_mean": 3.0, "norm_textures_mean": 4.0}


def test_outside_a_kernel_nothing_is_rendered_and_show_is_silent(capsys):
    view = LiveNormView(["CE"])
    assert not view.render and view.show() is view
    callback = view.callback_for("CE", epochs=3)
    for epoch in (1, 2):
        callback(epoch, {key: value for key, value in fake_row(epoch).items() if key != "norm_textures_mean"})
    assert view.redraws == 0 and view.png is None and capsys.readouterr().out == ""
    assert view.lines("CE") == {"train": ([1, 2], [2.0, 4.0]), "test": ([1, 2], [1.0, 1.0]),
                                "mnist": ([1, 2], [3.0, 3.0])}  # validation sets are not the OOD line
    with pytest.raises(ValueError, match="no panel 'LogitNorm'.*'CE'"):
        view.callback_for("LogitNorm")


def test_comparison_runs_live_follows_a_training_run_and_draws_a_cached_one_at_once(monkeypatch):
    import lnlab.runs
    from lnlab import suite

    views, asked = [], []
    monkeypatch.setattr(LiveNormView, "show", lambda self: views.append(self) or self)

    def get_run(config, root=None, progress=True, callbacks=(), train=True):  # CE trains, LogitNorm is cached
        history = [fake_row(epoch, 2.0 if config.loss == "ce" else 1.0) for epoch in (1, 2)]
        asked.append((config.label(), len(callbacks)))
        for row in history if config.loss == "ce" else ():
            for callback in callbacks:
                callback(row["epoch"], row)
            assert views[0].lines("CE")["train"][1] == [r["norm_train_mean"] for r in history[:row["epoch"]]]
        return SimpleNamespace(config=config, history=history)

    monkeypatch.setattr(lnlab.runs, "get_run", get_run)
    runs = suite.comparison_runs("ci", taus=[0.04], progress=False, live=True)
    (view,) = views
    assert list(runs) == ["CE", "LogitNorm τ=0.04"] and asked == [("CE", 1), ("LogitNorm τ=0.04", 1)]
    assert view.ood == "textures"  # the profile's first OOD set
    for label, run in runs.items():
        assert view.lines(label)["textures"] == ([1, 2], [4.0, 4.0])
        assert view.lines(label)["test"] == ([1, 2], [run[0].history[0]["norm_test_mean"]] * 2)
        assert view.title(label) == f"{label} (seed 0)\nfinished: 2 epochs, test acc 50.0%"
