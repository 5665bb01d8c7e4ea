"""Minibatches and batched prediction: the one way every loop walks a tensor of inputs.

Prediction keeps every minibatch's outputs on the device and reads them back once, at the
end of the pass (reprolib.devices.to_host, site "evaluation"): a read per minibatch would make
the host wait for the device every step.

`predict` is evaluation, and evaluation runs in float32 on every device, as the public test
loops do (no autocast; docs/methods.md s.4): bf16 logits would move calibration metrics.
Mixed precision is for training only (reprolib.transfer.train).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
from torch import Tensor

from reprolib.devices import to_host

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
    return predict_batches(forward, (inputs[idx.to(inputs.device)].to(device)
                                     for idx in minibatches(len(inputs), batch_size, None)))


@torch.no_grad()
def predict_batches(forward: Forward, batches: Iterable[Tensor]) -> Tensor:
    """forward() of each batch, in order, as one float32 CPU tensor: kept on the device, read
    back once (module docstring). Float32, no autocast."""
    chunks = [forward(x).float() for x in batches]
    if not chunks:
        return torch.empty(0)
    return to_host(torch.cat(chunks), "evaluation")
