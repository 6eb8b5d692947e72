"""Models: names, output shapes, the paper's WRN-40-2."""

from __future__ import annotations

import pytest
import torch

from lnlab.models import available_models, build_model


@pytest.mark.parametrize("name", ["wrn40_2", "resnet18", "fastnet", "airnet"])
@pytest.mark.parametrize("num_classes", [10, 100])
def test_build_model_gives_logits_of_the_right_shape(name, num_classes):
    model = build_model(name, num_classes).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, num_classes) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_available_models_are_the_four_names():
    assert available_models() == ["wrn40_2", "resnet18", "fastnet", "airnet"]


def test_airnet_is_the_laptop_recipes_network():
    """Three blocks of two 3x3 convs, widths w, 4w, 4w, a max-pool per block: 0.49M parameters at w = 32."""
    model = build_model("airnet")
    assert sum(p.numel() for p in model.parameters()) == 491_754
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 128, 128, 128, 128]
    assert len([m for m in model.modules() if isinstance(m, torch.nn.MaxPool2d)]) == 3
    assert build_model("airnet", width=8)(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_unknown_model_names_the_valid_ones():
    with pytest.raises(ValueError, match="wrn40_2.*resnet18.*fastnet"):
        build_model("vgg16")


def test_wrn40_2_is_the_papers_network():
    model = build_model("wrn40_2")
    n_params = sum(p.numel() for p in model.parameters())
    assert 2.2e6 < n_params < 2.3e6  # WRN-40-2: 2.24M parameters
    assert {b.drop_rate for b in model.modules() if hasattr(b, "drop_rate")} == {0.3}
    assert len([m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]) == 1 + 3 * 6 * 2 + 3


def test_dropout_is_active_only_in_train_mode():
    model = build_model("wrn40_2")
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))


def test_fastnet_width_and_depth_change_its_size():
    small, wide, deep = build_model("fastnet", width=8), build_model("fastnet", width=16), build_model("fastnet", width=8, depth=5)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(small) < count(wide) and count(small) < count(deep)
    assert deep(torch.randn(1, 3, 32, 32)).shape == (1, 10)
