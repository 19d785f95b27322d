"""Test-only plugins: a quick synthetic task and architectures that misbehave on purpose.

Registered into registries built by the tests, or installed as a throwaway distribution for
the CLI tests; never shipped.
"""

from __future__ import annotations

from dataclasses import dataclass

from optuna.distributions import FloatDistribution

from automl_rnn import hookimpl
from automl_rnn.types import Architecture, Task, TaskData


@dataclass(frozen=True)
class SignOptions:
    n: int = 160
    length: int = 12


def prepare_sign(options: SignOptions, params) -> TaskData:
    """Classify whether a noisy sequence sums to a positive number (2 classes)."""
    import numpy as np
    import torch
    from torchmetrics.classification import MulticlassAccuracy

    from automl_rnn.data import SequenceDataset
    from automl_rnn.nn import SequenceClassifier, Standardize

    rng = np.random.default_rng(0)
    x = rng.normal(size=(options.n, options.length, 1)).astype("float32")
    y = (x.sum(axis=(1, 2)) > 0).astype("int64")
    cut1, cut2 = int(0.6 * options.n), int(0.8 * options.n)
    return TaskData(
        train=SequenceDataset(x[:cut1], y[:cut1]),
        val=SequenceDataset(x[cut1:cut2], y[cut1:cut2]),
        test=SequenceDataset(x[cut2:], y[cut2:]),
        input_size=1,
        build_model=lambda backbone: SequenceClassifier(backbone, Standardize(x[:cut1].mean((0, 1)), x[:cut1].std((0, 1))), 2),
        loss=torch.nn.functional.cross_entropy,
        metrics=lambda: {"accuracy": MulticlassAccuracy(2, average="micro")},
        decode=lambda logits: np.array(["neg", "pos"])[logits.argmax(-1)],
    )


def build_nan(input_size: int, params):
    """A GRU whose output turns NaN when ``poison`` > 0.5: the loss becomes NaN."""
    from torch import nn

    class Poisoned(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(input_size, int(params["hidden_size"]), batch_first=True)
            self.output_size = int(params["hidden_size"])
            self.poison = float(params["poison"]) > 0.5

        def forward(self, x, lengths=None):
            out = self.rnn(x)[0]
            return out * float("nan") if self.poison and self.training else out

    return Poisoned()


def build_rank_crash(input_size: int, params):
    """A GRU that raises while training in the process of rank 1 only (multi-device trials)."""
    import os

    from torch import nn

    class RankCrash(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(input_size, int(params["hidden_size"]), batch_first=True)
            self.output_size = int(params["hidden_size"])

        def forward(self, x, lengths=None):
            if self.training and os.environ.get("RANK") == "1":
                raise RuntimeError("rank 1 is broken on purpose")
            return self.rnn(x)[0]

    return RankCrash()


def build_crash(input_size: int, params):
    """An architecture whose build raises: a plugin bug."""
    raise RuntimeError("crash family is broken on purpose")


def build_wrong_shape(input_size: int, params):
    """A backbone that drops the time axis: breaks the Backbone contract."""
    from torch import nn

    class Flat(nn.Module):
        output_size = 4

        def forward(self, x, lengths=None):
            return x.mean(dim=1).repeat(1, 4)[:, :4]

    return Flat()


def build_out_of_memory(input_size: int, params):
    """A backbone that runs out of memory in its first training step, as a too-large model would."""
    import torch
    from torch import nn

    class Greedy(nn.Module):
        output_size = 4

        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(input_size, 4)

        def forward(self, x, lengths=None):
            if self.training:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")
            return self.proj(x)

    return Greedy()


@hookimpl
def automl_rnn_register_tasks(register) -> None:
    register(Task("sign", "sign of a noisy sum (synthetic, seconds)", metric="accuracy",
                  direction="maximize", requires_causal=False, prepare=prepare_sign, options=SignOptions))


@hookimpl
def automl_rnn_register_architectures(register) -> None:
    register(Architecture("nan_gru", "GRU that may emit NaN", causal=True, build=build_nan,
                          space=lambda: {"poison": FloatDistribution(0.0, 1.0)}))
    register(Architecture("crash", "always raises in build", causal=True, build=build_crash))
    register(Architecture("rank_crash", "GRU that raises in rank 1's training", causal=True, build=build_rank_crash))
    register(Architecture("wrong_shape", "returns (B, H) instead of (B, T, H)", causal=True,
                          build=build_wrong_shape))
    register(Architecture("out_of_memory", "runs out of memory when it trains", causal=True,
                          build=build_out_of_memory))


INTERRUPTS = {"left": 0}
"""How many more times the ``interrupt`` family raises KeyboardInterrupt (tests set it)."""


def build_interrupt(input_size: int, params):
    """A GRU that simulates Ctrl-C while the first INTERRUPTS['left'] trials are built."""
    if INTERRUPTS["left"] > 0:
        INTERRUPTS["left"] -= 1
        raise KeyboardInterrupt
    from automl_rnn_plugins.archs.recurrent import build_recurrent

    return build_recurrent("gru", False)(input_size, params)


@hookimpl(specname="automl_rnn_register_architectures")
def register_interrupt(register) -> None:
    register(Architecture("interrupt", "GRU that can simulate Ctrl-C", causal=True, build=build_interrupt))
