"""Contract checks for an ``Architecture``: the promises the engine relies on.

Every check builds small backbones on CPU and takes seconds. A failed check raises
``AssertionError`` whose message names the family, what went wrong and how to fix it.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any, Mapping

import cloudpickle
import torch
from optuna.distributions import BaseDistribution, CategoricalDistribution

from automl_rnn.nn import count_parameters
from automl_rnn.space import distribution_from_spec, space_problems
from automl_rnn.testing._threads import one_thread
from automl_rnn.types import Architecture

MODEL_PARAMS = ("hidden_size", "num_layers", "dropout")
"""The common parameters that ``Architecture.build`` receives."""

SMALL = {"hidden_size": 16, "num_layers": 2, "dropout": 0.0}
"""Common parameters of the backbones most checks build: small, but stacked."""

TOLERANCE = {"atol": 1e-5, "rtol": 1e-4}
"""How close a padded sequence's outputs must be to its outputs alone."""


@dataclass(frozen=True)
class ArchitectureReport:
    """Figures measured while checking one family."""

    name: str
    parameters_smallest: int
    parameters_largest: int
    tiny_task_accuracy: float | None
    seconds: float


@functools.lru_cache(maxsize=1)
def common_model_space() -> dict[str, BaseDistribution]:
    """The shipped ranges of hidden_size, num_layers and dropout (conf/search/default.yaml)."""
    from omegaconf import OmegaConf

    text = resources.files("automl_rnn_conf").joinpath("search/default.yaml").read_text()
    space = OmegaConf.to_container(OmegaConf.create(text).space)
    return {name: distribution_from_spec(name, space[name]) for name in MODEL_PARAMS}


def _end(dist: BaseDistribution, largest: bool) -> Any:
    """The low (or high) end of a range; the first (or last) choice of a categorical."""
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[-1 if largest else 0]
    return dist.high if largest else dist.low


def params_at(arch: Architecture, largest: bool = False, **overrides: Any) -> dict[str, Any]:
    """Build parameters with every range at its low (or high) end; ``overrides`` win."""
    common = {name: _end(dist, largest) for name, dist in common_model_space().items()}
    own = {name: _end(dist, largest) for name, dist in arch.space().items()}
    return {**common, **own, **overrides}


def small_params(arch: Architecture, **overrides: Any) -> dict[str, Any]:
    """The family's own parameters at their low end, with the small common parameters."""
    return params_at(arch, **{**SMALL, **overrides})


def build(
    arch: Architecture, input_size: int, params: Mapping[str, Any], seed: int = 0
) -> torch.nn.Module:
    """Build a backbone under a fixed seed, checking it is an ``nn.Module`` with ``output_size``."""
    torch.manual_seed(seed)
    backbone = arch.build(input_size, dict(params))
    assert isinstance(backbone, torch.nn.Module), (
        f"architecture {arch.name!r}: build() returned {type(backbone).__name__}, not a "
        f"torch.nn.Module")
    size = getattr(backbone, "output_size", None)
    assert isinstance(size, int) and not isinstance(size, bool) and size > 0, (
        f"architecture {arch.name!r}: the backbone's output_size is {size!r}; set it to the number "
        f"of features H of each output step (a positive int)")
    return backbone


def run(
    arch: Architecture, backbone: torch.nn.Module, x: torch.Tensor, lengths: torch.Tensor | None
) -> torch.Tensor:
    """Call a backbone and check it returned one (B, T, output_size) tensor of finite values."""
    out = backbone(x, lengths)
    assert isinstance(out, torch.Tensor), (
        f"architecture {arch.name!r}: forward returned {type(out).__name__}, not a tensor. A "
        f"backbone returns only the (B, T, H) outputs; when wrapping nn.LSTM/nn.GRU-like modules "
        f"that return (outputs, state), return outputs only")
    expected = (x.shape[0], x.shape[1], backbone.output_size)
    assert tuple(out.shape) == expected, (
        f"architecture {arch.name!r}: input of shape {tuple(x.shape)} gave output of shape "
        f"{tuple(out.shape)}; a backbone must return (B, T, output_size) = {expected}")
    assert torch.isfinite(out).all(), (
        f"architecture {arch.name!r}: the output has NaN or inf values")
    return out


def check_space(arch: Architecture) -> None:
    """``space()`` returns a dict of plain names -> Optuna distributions."""
    problems = space_problems(arch.space())
    assert not problems, f"architecture {arch.name!r}: " + "; ".join(problems)


@one_thread
def check_output_shape(arch: Architecture, input_size: int = 3) -> None:
    """(B, T, D) -> (B, T, output_size) for several batch sizes and lengths, one step included."""
    backbone = build(arch, input_size, small_params(arch)).eval()
    with torch.no_grad():
        for batch, steps in ((4, 11), (1, 1), (3, 2)):
            run(arch, backbone, torch.randn(batch, steps, input_size), None)


@one_thread
def check_variable_length(arch: Architecture, input_size: int = 3) -> None:
    """Padding at the end never changes a valid step's output.

    A padded sequence must give the outputs it gives alone, whatever values the padding has.
    """
    backbone = build(arch, input_size, small_params(arch)).eval()
    long, short = torch.randn(1, 12, input_size), torch.randn(1, 7, input_size)
    padded = torch.zeros(2, 12, input_size)
    padded[0], padded[1, :7] = long[0], short[0]
    lengths = torch.tensor([12, 7])
    with torch.no_grad():
        batch = run(arch, backbone, padded, lengths)
        alone = run(arch, backbone, short, None)
        padded[1, 7:] = 100.0
        other_padding = run(arch, backbone, padded, lengths)
    hint = (f"architecture {arch.name!r}: {{}}; use `lengths` (valid steps per sequence) to mask "
            f"or pack the padded steps, e.g. with torch.nn.utils.rnn.pack_padded_sequence")
    assert torch.allclose(batch[1, :7], alone[0], **TOLERANCE), hint.format(
        "a padded sequence gives other outputs at its valid steps than the same sequence alone")
    assert torch.allclose(batch[:, :7], other_padding[:, :7], **TOLERANCE), hint.format(
        "changing the padding values changed outputs at valid steps")


@one_thread
def check_causal_flag(arch: Architecture, input_size: int = 3) -> None:
    """``causal=True`` exactly when changing future inputs leaves past outputs unchanged."""
    backbone = build(arch, input_size, small_params(arch)).eval()
    x = torch.randn(2, 16, input_size)
    changed = x.clone()
    changed[:, 9:] = torch.randn(2, 7, input_size)
    with torch.no_grad():
        before, after = run(arch, backbone, x, None), run(arch, backbone, changed, None)
    past_unchanged = torch.allclose(before[:, :9], after[:, :9], atol=1e-6)
    if arch.causal:
        assert past_unchanged, (
            f"architecture {arch.name!r} says causal=True, but changing inputs after step 9 "
            f"changed its outputs at steps 0-8: it looks ahead. Declare causal=False, or remove "
            f"the look-ahead (forecasting and language-model tasks only use causal families)")
    else:
        assert not past_unchanged, (
            f"architecture {arch.name!r} says causal=False, but its outputs never depend on later "
            f"inputs. Declare causal=True so forecasting tasks can use it")


def _build_and_step(
    arch: Architecture, input_size: int, params: Mapping[str, Any], label: str
) -> torch.nn.Module:
    """Build at ``params`` and take one SGD step; any error becomes a labelled AssertionError."""
    try:
        backbone = build(arch, input_size, params)
        _training_step(arch, backbone, input_size, label)
    except AssertionError:
        raise
    except Exception as error:  # a plugin's build or forward can fail in any way
        raise AssertionError(f"architecture {arch.name!r} fails at {label}: "
                             f"{type(error).__name__}: {error}") from error
    return backbone


def _training_step(
    arch: Architecture, backbone: torch.nn.Module, input_size: int, label: str
) -> None:
    """One SGD step on a padded batch: gradients must reach the parameters and be finite."""
    backbone.train()
    optimizer = torch.optim.SGD(backbone.parameters(), lr=1e-3)
    out = run(arch, backbone, torch.randn(3, 6, input_size), torch.tensor([6, 4, 1]))
    out.pow(2).mean().backward()
    grads = [p.grad for p in backbone.parameters() if p.requires_grad]
    assert any(g is not None and bool(g.abs().sum() > 0) for g in grads), (
        f"architecture {arch.name!r} ({label}): no parameter received a gradient; the output "
        f"must be computed from the module's parameters with differentiable operations")
    assert all(g is None or bool(torch.isfinite(g).all()) for g in grads), (
        f"architecture {arch.name!r} ({label}): a gradient has NaN or inf values")
    optimizer.step()


@one_thread
def check_extremes_train(arch: Architecture, input_size: int = 3) -> tuple[int, int]:
    """The smallest and the largest point of the space build and take a training step.

    The common ranges are the shipped ones (conf/search/default.yaml); the family's own ranges
    are taken at their ends (a categorical's first choice, then its last), and every other
    choice of a categorical parameter is tried at the smallest point.
    Returns the parameter counts of the smallest and the largest backbone.
    """
    counts = []
    for largest in (False, True):
        params = params_at(arch, largest)
        label = f"its {'largest' if largest else 'smallest'} point {params}"
        counts.append(count_parameters(_build_and_step(arch, input_size, params, label)))
    for name, dist in arch.space().items():
        if isinstance(dist, CategoricalDistribution):
            for choice in dist.choices[1:]:  # the first choice is the smallest point's
                params = params_at(arch, **{name: choice})
                _build_and_step(arch, input_size, params, f"{name}={choice!r} ({params})")
    assert counts[0] > 0, (
        f"architecture {arch.name!r}: the smallest backbone has no trainable parameter")
    assert counts[1] > counts[0], (
        f"architecture {arch.name!r}: the largest point of the space has {counts[1]} parameters, "
        f"no more than the smallest ({counts[0]}); build must use hidden_size and num_layers")
    return counts[0], counts[1]


@one_thread
def check_determinism(arch: Architecture, input_size: int = 3, seed: int = 0) -> None:
    """The same seed builds the same weights, and evaluation gives the same outputs twice."""
    first = build(arch, input_size, small_params(arch), seed).eval()
    second = build(arch, input_size, small_params(arch), seed).eval()
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), (
            f"architecture {arch.name!r}: two builds under torch.manual_seed({seed}) differ in "
            f"{name!r}; draw every random initial value from torch's generator")
    x = torch.randn(2, 9, input_size)
    with torch.no_grad():
        assert torch.equal(run(arch, first, x, None), run(arch, second, x, None)), (
            f"architecture {arch.name!r}: equal weights gave different outputs in eval mode")


@one_thread
def check_learns_tiny_task(
    arch: Architecture, steps: int = 100, threshold: float = 0.8, seed: int = 0
) -> float:
    """The family learns the sign of a short sequence's sum within ``steps`` Adam steps.

    One layer of width 16 with a linear readout of the mean output; accuracy is measured on
    fresh sequences. Returns that accuracy.
    """
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(512, 8, 1, generator=generator)
    y = (x.sum(dim=(1, 2)) > 0).float()
    train_x, train_y, test_x, test_y = x[:256], y[:256], x[256:], y[256:]
    backbone = build(arch, 1, small_params(arch, num_layers=1), seed).train()
    head = torch.nn.Linear(backbone.output_size, 1)
    optimizer = torch.optim.Adam([*backbone.parameters(), *head.parameters()], lr=1e-2)
    for _ in range(steps):
        logits = head(backbone(train_x, None).mean(dim=1)).squeeze(-1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, train_y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    backbone.eval()
    with torch.no_grad():
        predicted = head(backbone(test_x, None).mean(dim=1)).squeeze(-1) > 0
        accuracy = (predicted.float() == test_y).float().mean().item()
    assert accuracy >= threshold, (
        f"architecture {arch.name!r}: after {steps} Adam steps (lr 1e-2, width 16) it reaches "
        f"{accuracy:.2f} accuracy on the sign of a sum of 8 steps (need {threshold}); check that "
        f"the outputs depend on the inputs and that gradients flow")
    return accuracy


PICKLE_HINT = (
    "multi-device trials (trainer.strategy=ddp_spawn) copy each trial's model (with cloudpickle, so "
    "classes defined inside build are fine) and its datasets (with pickle) into the processes that "
    "train it; keep no open files, locks, threads or other resources of one process in them")


@one_thread
def check_picklable(arch: Architecture, input_size: int = 3) -> None:
    """A built backbone survives a cloudpickle round trip and its copy computes the same outputs."""
    backbone = build(arch, input_size, small_params(arch)).eval()
    try:
        copy = cloudpickle.loads(cloudpickle.dumps(backbone))
    except Exception as error:
        raise AssertionError(f"architecture {arch.name!r}: the backbone cannot be copied to another "
                             f"process ({type(error).__name__}: {error}); {PICKLE_HINT}") from error
    x = torch.randn(2, 7, input_size)
    with torch.no_grad():
        assert torch.allclose(run(arch, backbone, x, None), run(arch, copy.eval(), x, None), **TOLERANCE), (
            f"architecture {arch.name!r}: the copied backbone computes different outputs; keep every "
            f"tensor it uses in parameters or buffers")


@one_thread
def check_architecture(
    arch: Architecture, *, input_size: int = 3, learn: bool = True
) -> ArchitectureReport:
    """Run every architecture check; ``learn=False`` skips the (slowest) tiny-task check."""
    assert isinstance(arch, Architecture), (
        f"expected an automl_rnn.types.Architecture, got {type(arch).__name__}")
    started = time.perf_counter()
    check_space(arch)
    check_output_shape(arch, input_size)
    check_variable_length(arch, input_size)
    check_causal_flag(arch, input_size)
    check_determinism(arch, input_size)
    check_picklable(arch, input_size)
    smallest, largest = check_extremes_train(arch, input_size)
    accuracy = check_learns_tiny_task(arch) if learn else None
    return ArchitectureReport(arch.name, smallest, largest, accuracy, time.perf_counter() - started)
