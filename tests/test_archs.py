"""Every registered architecture family: shapes, variable-length batches, causality, learning."""

from __future__ import annotations

import pytest
import torch

from automl_rnn.plugins import load_registry

REGISTRY = load_registry(use_entry_points=True)
FAMILIES = sorted(REGISTRY.architectures)
PARAMS = {"hidden_size": 16, "num_layers": 2, "dropout": 0.0}


def build(name: str, input_size: int = 3, **overrides):
    arch = REGISTRY.architectures[name]
    own = {k: (d.choices[0] if hasattr(d, "choices") else d.low) for k, d in arch.space().items()}
    torch.manual_seed(0)
    return arch.build(input_size, {**PARAMS, **own, **overrides}).eval()


@pytest.mark.parametrize("name", FAMILIES)
def test_output_shape_matches_output_size(name):
    backbone = build(name)
    out = backbone(torch.randn(4, 11, 3), None)
    assert out.shape == (4, 11, backbone.output_size)


@pytest.mark.parametrize("name", FAMILIES)
def test_padding_never_changes_a_valid_output(name):
    backbone = build(name)
    long, short = torch.randn(1, 12, 3), torch.randn(1, 7, 3)
    padded = torch.zeros(2, 12, 3)
    padded[0], padded[1, :7] = long[0], short[0]
    with torch.no_grad():
        batch = backbone(padded, torch.tensor([12, 7]))
        alone = backbone(short, None)
        padded[1, 7:] = 100.0  # different padding, same sequences
        other_padding = backbone(padded, torch.tensor([12, 7]))
    torch.testing.assert_close(batch[1, :7], alone[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(batch[:, :7], other_padding[:, :7], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", FAMILIES)
def test_causal_flag_is_honest(name):
    backbone = build(name)
    x = torch.randn(2, 16, 3)
    changed = x.clone()
    changed[:, 9:] = torch.randn(2, 7, 3)
    with torch.no_grad():
        before, after = backbone(x, None), backbone(changed, None)
    prefix_unchanged = torch.allclose(before[:, :9], after[:, :9], atol=1e-6)
    assert prefix_unchanged == REGISTRY.architectures[name].causal


@pytest.mark.parametrize("name", FAMILIES)
def test_dropout_between_layers_is_applied_in_training_only(name):
    backbone = build(name, dropout=0.5)
    x = torch.randn(4, 10, 3)
    backbone.eval()
    with torch.no_grad():
        assert torch.equal(backbone(x, None), backbone(x, None))
    backbone.train()
    with torch.no_grad():
        assert not torch.equal(backbone(x, None), backbone(x, None))


@pytest.mark.parametrize("name", FAMILIES)
def test_learns_a_tiny_task(name):
    """Sign of the sum of a short sequence: a linear readout of the mean output learns it."""
    torch.manual_seed(0)
    backbone = build(name, input_size=1, num_layers=1).train()
    head = torch.nn.Linear(backbone.output_size, 1)
    optimizer = torch.optim.Adam([*backbone.parameters(), *head.parameters()], lr=1e-2)
    x = torch.randn(256, 8, 1)
    y = (x.sum(dim=(1, 2)) > 0).float()
    for _ in range(150):
        logits = head(backbone(x, None).mean(dim=1)).squeeze(-1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    accuracy = ((logits > 0).float() == y).float().mean().item()
    assert accuracy > 0.9


def test_mamba_without_mambapy_fails_with_an_install_hint(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "mambapy", None)  # makes the import fail
    with pytest.raises(ImportError, match=r'pip install "automl-rnn\[mamba\]"'):
        build("mamba")
    assert build("gru").output_size == PARAMS["hidden_size"]  # the other families are unaffected
