"""Small torch modules that tasks compose around a backbone."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def valid_mask(lengths: torch.Tensor | None, steps: int, device: torch.device) -> torch.Tensor | None:
    """(B, T) boolean mask of valid steps, or None when no sequence is padded."""
    if lengths is None:
        return None
    return torch.arange(steps, device=device)[None, :] < lengths.to(device)[:, None]


def last_valid_step(h: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """(B, T, H) -> (B, H): the output at each sequence's last valid step."""
    if lengths is None:
        return h[:, -1]
    index = (lengths.to(h.device) - 1).clamp(min=0)
    return h[torch.arange(h.shape[0], device=h.device), index]


def max_over_valid_steps(h: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """(B, T, H) -> (B, H): the maximum over each sequence's valid steps."""
    mask = valid_mask(lengths, h.shape[1], h.device)
    if mask is None:
        return h.amax(dim=1)
    return h.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1)


def mean_over_valid_steps(h: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """(B, T, H) -> (B, H): the mean over each sequence's valid steps."""
    mask = valid_mask(lengths, h.shape[1], h.device)
    if mask is None:
        return h.mean(dim=1)
    weights = mask.unsqueeze(-1).to(h.dtype)
    return (h * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def count_parameters(module: nn.Module) -> int:
    """The number of trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class Standardize(nn.Module):
    """Fixed per-feature scaling ``(x - mean) / std`` with statistics fitted on training data.

    The statistics are buffers, so they are saved with the model and a logged model takes
    raw input.
    """

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        std = np.where(np.asarray(std) > 1e-8, std, 1.0)
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean), dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def to_patches(x: torch.Tensor, lengths: torch.Tensor | None, patch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, T, D) -> (B, ceil(T / patch), patch * D): each step holds ``patch`` consecutive steps.

    Steps past a sequence's length and past T are zeros, so padding never changes a valid
    patch; ``lengths`` become the number of patches each sequence touches.
    """
    if patch == 1:
        return x, lengths
    mask = valid_mask(lengths, x.shape[1], x.device)
    if mask is not None:
        x = x * mask[..., None].to(x.dtype)
    batch, steps, features = x.shape
    x = F.pad(x, (0, 0, 0, -steps % patch))
    patches = x.reshape(batch, -1, patch * features)
    return patches, None if lengths is None else (lengths + patch - 1) // patch


def training_noise(x: torch.Tensor, std: float) -> torch.Tensor:
    """``x`` plus Gaussian noise of standard deviation ``std`` (jitter augmentation).

    Applied to standardised inputs while training only, so ``std`` is in units of the training
    split's standard deviation: each epoch sees a fresh noisy copy of a small training set.
    """
    return x + std * torch.randn_like(x) if std > 0 else x


class SequenceClassifier(nn.Module):
    """Standardize -> [training noise] -> patches -> backbone -> [last valid step, mean, max over valid steps] -> logits.

    With ``patch`` > 1 the backbone reads the series ``patch`` steps at a time
    (``to_patches``): a ``patch``-times shorter sequence, which recurrent networks learn
    far more easily and quickly on long series. The last step alone would not serve
    bidirectional backbones (their backward direction has read the whole sequence at step 0);
    the mean and the max over time also let the head see a short, decisive event anywhere in a
    long series. ``noise`` > 0 jitters the standardised input while training
    (``training_noise``); evaluation and prediction read the input as given.
    """

    patch: int = 1
    """Steps per backbone step (a class default, so models pickled before it existed still load)."""
    noise: float = 0.0
    """Standard deviation of the ``training_noise`` added to the standardised input while training."""

    def __init__(self, backbone: nn.Module, scaler: Standardize, num_classes: int, patch: int = 1,
                 noise: float = 0.0) -> None:
        super().__init__()
        self.scaler = scaler
        self.backbone = backbone
        self.patch = patch
        self.noise = noise
        self.head = nn.Linear(3 * backbone.output_size, num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        x = self.scaler(x)
        if self.training:
            x = training_noise(x, self.noise)
        x, lengths = to_patches(x, lengths, self.patch)
        h = self.backbone(x, lengths)
        pooled = torch.cat([last_valid_step(h, lengths), mean_over_valid_steps(h, lengths),
                            max_over_valid_steps(h, lengths)], -1)
        return self.head(pooled)
