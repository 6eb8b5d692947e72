"""Post-hoc OOD scores: definitions, orientation (higher = more ID) and dispatch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lnlab import available_scores, score
from lnlab.scores import energy, gradnorm, logit_norm_score, max_logit, msp, odin


@pytest.fixture
def logits():
    return torch.randn(64, 10, generator=torch.Generator().manual_seed(0)) * 4


def test_logit_scores_match_definitions(logits):
    assert torch.allclose(msp(logits), torch.softmax(logits, 1).max(1).values)
    assert torch.allclose(msp(logits, temperature=2.0), torch.softmax(logits / 2, 1).max(1).values)
    assert torch.equal(max_logit(logits), logits.max(1).values)
    assert torch.allclose(energy(logits, 3.0), 3.0 * torch.log(torch.exp(logits / 3.0).sum(1)), rtol=1e-5)
    assert torch.allclose(logit_norm_score(logits), logits.norm(dim=1))


def test_confident_rows_score_higher_than_uniform_rows():
    confident = torch.tensor([[10.0, 0.0, 0.0]])
    flat = torch.tensor([[0.1, 0.0, 0.0]])
    for name in ("msp", "max_logit", "energy", "logit_norm"):
        assert score(name, confident) > score(name, flat), name


def test_msp_temperature_flattens_confidence(logits):
    assert (msp(logits, 1000.0) < msp(logits, 1.0)).all()
    assert torch.allclose(msp(logits, 1e6), torch.full((64,), 0.1), atol=1e-4)


def tiny_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 5)).eval()


def test_odin_raises_msp_of_its_own_prediction():
    model = tiny_model()
    x = torch.randn(8, 3, 2, 2)
    plain = msp(model(x), 1000.0)
    perturbed = odin(model, x, temperature=1000.0, epsilon=0.05)
    assert perturbed.shape == (8,)
    assert (perturbed >= plain - 1e-7).all() and (perturbed > plain).any()
    assert torch.allclose(odin(model, x, temperature=1000.0, epsilon=0.0), plain.detach(), atol=1e-7)


def test_odin_step_is_in_pixel_units_of_normalized_inputs():
    """ε/std per channel: ε=0.01 on inputs normalized by std 0.5 is a step of 0.02 on the raw inputs."""
    model = tiny_model()
    x = torch.randn(8, 3, 2, 2)
    scaled = odin(model, x, temperature=10.0, epsilon=0.01, std=(0.5, 0.5, 0.5))
    assert torch.allclose(scaled, odin(model, x, temperature=10.0, epsilon=0.02, std=None), atol=1e-7)
    assert not torch.allclose(scaled, odin(model, x, temperature=10.0, epsilon=0.01, std=None), atol=1e-7)


def test_gradnorm_matches_closed_form_for_linear_head():
    """For the last layer W, ∂/∂W of -mean_c log softmax(f/T) = (softmax - 1/k) h^T / T."""
    model = tiny_model()
    x = torch.randn(6, 3, 2, 2)
    features = model[:3](x)
    probabilities = torch.softmax(model(x), 1)
    expected = ((probabilities - 1 / 5).abs().sum(1) * features.abs().sum(1)).detach()
    assert torch.allclose(gradnorm(model, x), expected, rtol=1e-4)


def _gradnorm_by_autograd(model, x, temperature):
    """Reference: one backward pass per sample, the L1 norm of the last Linear's weight gradient."""
    layer = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    out = []
    for sample in x:
        logits = model(sample.unsqueeze(0)).float() / temperature
        loss = -torch.log_softmax(logits, dim=1).mean()
        (grad,) = torch.autograd.grad(loss, layer.weight)
        out.append(grad.abs().sum())
    return torch.stack(out).detach()


@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_batched_gradnorm_equals_per_sample_autograd_on_a_conv_net(temperature):
    from lnlab.models import build_model

    torch.manual_seed(0)
    model = build_model("fastnet", 10, width=8).eval()
    x = torch.randn(5, 3, 32, 32)
    torch.testing.assert_close(gradnorm(model, x, temperature), _gradnorm_by_autograd(model, x, temperature),
                               rtol=1e-4, atol=1e-6)


def test_dispatch_and_errors(logits):
    assert available_scores() == ["msp", "max_logit", "energy", "logit_norm", "odin", "gradnorm"]
    assert torch.equal(score("msp", logits, temperature=2.0), msp(logits, 2.0))
    with pytest.raises(ValueError, match="unknown score 'softmax'"):
        score("softmax", logits)
    with pytest.raises(ValueError, match="takes no temperature"):
        score("max_logit", logits, temperature=2.0)
    with pytest.raises(ValueError, match="needs model"):
        score("odin", logits)
    with pytest.raises(ValueError, match="needs logits"):
        score("energy")
    with pytest.raises(ValueError, match="temperature"):
        msp(logits, temperature=0)
    with pytest.raises(ValueError, match="2-D"):
        msp(torch.zeros(10))
