"""Checks run on one CPU thread: the kit's models are tiny, so that is fastest and steadiest."""

from __future__ import annotations

import functools
from typing import Callable, TypeVar

import torch

F = TypeVar("F", bound=Callable)


def one_thread(check: F) -> F:
    """Run ``check`` with ``torch.set_num_threads(1)``, then restore the previous count.

    With several threads, a tiny model spends its time in thread hand-offs, and on a busy
    machine (CI, pytest-xdist) a check can become tens of times slower.
    """

    @functools.wraps(check)
    def wrapper(*args, **kwargs):
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return check(*args, **kwargs)
        finally:
            torch.set_num_threads(previous)

    return wrapper  # type: ignore[return-value]
