"""The logged model: an MLflow pyfunc that predicts from raw, unscaled sequences.

Scaling lives inside the torch model (fitted buffers), and label decoding is part of the
wrapper, so ``mlflow.pyfunc.load_model(uri).predict(raw_series)`` needs nothing else.
"""

from __future__ import annotations

from typing import Any, Callable

import mlflow
import numpy as np
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

PREDICT_BATCH = 256


class SequencePredictor(mlflow.pyfunc.PythonModel):
    """Wraps a trained ``nn.Module`` (``forward(x, lengths)``) and a decode function.

    ``predict`` accepts a (N, T) array of univariate series, a (N, T, D) array, a DataFrame
    with one series per row, or a list of (T,) / (T, D) arrays of any lengths.
    """

    def __init__(self, model, decode: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        self.model = model.cpu().eval()
        self.decode = decode

    def predict(self, context, model_input, params: dict[str, Any] | None = None):
        import torch

        from automl_rnn.data import as_sequences, pad_batch

        sequences = as_sequences(model_input)
        outputs = []
        with torch.no_grad():
            for start in range(0, len(sequences), PREDICT_BATCH):
                x, lengths = pad_batch(sequences[start : start + PREDICT_BATCH])
                outputs.append(self.model(x, lengths).numpy())
        output = np.concatenate(outputs)
        return self.decode(output) if self.decode is not None else output


def signature_for(input_size: int, output_shape: tuple[int, ...], decoded: bool) -> ModelSignature:
    """Inputs: float64 (N, T) for univariate data or (N, T, D); any T."""
    shape = (-1, -1) if input_size == 1 else (-1, -1, input_size)
    inputs = Schema([TensorSpec(np.dtype(np.float64), shape)])
    if decoded:
        return ModelSignature(inputs=inputs)
    outputs = Schema([TensorSpec(np.dtype(np.float32), (-1, *output_shape))])
    return ModelSignature(inputs=inputs, outputs=outputs)


def runtime_requirements() -> list[str]:
    """Pinned requirements of the logged model (given explicitly: inferring them is slow)."""
    from importlib.metadata import version

    names = ["torch", "lightning", "mlflow", "numpy", "cloudpickle", "automl-rnn"]
    return [f"{name}=={version(name)}" for name in names]
