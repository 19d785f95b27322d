"""Sequence datasets and batching shared by every task.

A dataset holds raw sequences of shape (T, D), possibly of different lengths, and one
target per sequence. Batches are padded at the end and carry the true lengths, which
backbones use so that padding never changes a valid step's output.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset


class SequenceDataset(Dataset):
    """Sequences ``xs[i]`` of shape (T_i, D) with targets ``ys[i]``."""

    def __init__(self, xs: Sequence[np.ndarray] | np.ndarray, ys: np.ndarray) -> None:
        if len(xs) != len(ys):
            raise ValueError(f"{len(xs)} sequences but {len(ys)} targets")
        self.xs = [np.asarray(x, dtype=np.float32) for x in xs]
        self.ys = np.asarray(ys)
        if any(x.ndim != 2 for x in self.xs):
            raise ValueError("every sequence must be a (T, D) array")

    def __len__(self) -> int:
        return len(self.xs)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.xs[index], self.ys[index]

    @property
    def equal_length(self) -> bool:
        """True when every sequence has the same number of steps."""
        return len({len(x) for x in self.xs}) <= 1


def concatenate(first: SequenceDataset, second: SequenceDataset) -> SequenceDataset:
    """One dataset holding the sequences of ``first`` followed by those of ``second``."""
    return SequenceDataset(first.xs + second.xs, np.concatenate([first.ys, second.ys]))


def pad_batch(xs: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Stack (T_i, D) arrays into a (B, T_max, D) tensor, zero-padded at the end.

    Returns the lengths (B,) as well, or None when all sequences have the same length.
    """
    lengths = [len(x) for x in xs]
    longest = max(lengths)
    if min(lengths) == longest:
        return torch.from_numpy(np.stack(xs)), None
    batch = np.zeros((len(xs), longest, xs[0].shape[1]), dtype=np.float32)
    for row, x in enumerate(xs):
        batch[row, : len(x)] = x
    return torch.from_numpy(batch), torch.tensor(lengths, dtype=torch.long)


def collate(items: Sequence[tuple[np.ndarray, np.ndarray]]):
    """DataLoader collate function: ``(x, lengths, y)`` with x padded (see ``pad_batch``)."""
    xs, ys = zip(*items)
    x, lengths = pad_batch(xs)
    return x, lengths, torch.as_tensor(np.stack(ys))


def as_sequences(raw) -> list[np.ndarray]:
    """Turn what a user passes to a model into a list of (T, D) float32 arrays.

    Accepts a 2-D array (N, T) of univariate series, a 3-D array (N, T, D), a pandas
    DataFrame (one series per row), or a list of 1-D (T,) or 2-D (T, D) arrays of any lengths.
    """
    if hasattr(raw, "to_numpy"):
        raw = raw.to_numpy()
    if isinstance(raw, np.ndarray) and raw.dtype != object:
        if raw.ndim == 2:
            return [row[:, None].astype(np.float32) for row in raw]
        if raw.ndim == 3:
            return [row.astype(np.float32) for row in raw]
        raise ValueError(f"expected a (N, T) or (N, T, D) array, got shape {raw.shape}")
    sequences = []
    for item in raw:
        item = np.asarray(item, dtype=np.float32)
        sequences.append(item[:, None] if item.ndim == 1 else item)
    return sequences
