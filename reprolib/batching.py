"""Minibatches and batched prediction: the one way every loop walks a tensor of inputs.

`predict` is evaluation, and evaluation runs in float32 on every device, as the public test
loops do (no autocast; docs/methods.md s.4): bf16 logits would move calibration metrics.
Mixed precision is for training only (reprolib.transfer.train).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

Forward = Callable[[Tensor], Tensor]


def minibatches(n: int, batch_size: int, generator: torch.Generator | None) -> Iterator[Tensor]:
    """Index tensors covering 0..n-1: a seeded permutation when `generator` is given."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


@torch.no_grad()
def predict(forward: Forward, inputs: Tensor, batch_size: int, device: str = "cpu") -> Tensor:
    """forward() of every input, in order, as a float32 CPU tensor (no gradients).

    Each chunk is moved to `device` first, so `inputs` may live on the CPU. Float32 on every
    device: no autocast here (see the module docstring).
    """
    chunks = []
    for idx in minibatches(len(inputs), batch_size, None):
        chunks.append(forward(inputs[idx.to(inputs.device)].to(device)).float().cpu())
    if not chunks:
        return torch.empty(0)
    return torch.cat(chunks)
