"""Multiply-accumulates of a module's passes, counted from its layer sizes (the cost model's unit).

torch's FlopCounterMode counts the convolutions and matrix products a pass runs, from their
shapes; the module runs on the `meta` device (shapes, no data), so counting a ResNet-50 costs
no compute. Elementwise work (normalisation, ReLU, BatchNorm in eval mode) is not counted:
on a GPU it rides along with the convolutions, and the cost model prices images at measured
backbone rates, so only the ratio of two counts is ever used (reprolib.sweep.cost).

- `pass_macs(module, shape, train)`: one image's forward (train=False, no gradient) or forward +
  backward (train=True: gradients to every parameter that requires one, and to the input when
  `input_grad`; a frozen backbone's backward computes only the gradient to its input, which
  costs one more forward).
- `meta_backbone(name)`: the registry backbone built on `meta`, memoised.
- `activation_bytes(name)`: what a training step keeps per image for its backward (the group
  planner bounds a grouped backbone pass with it, reprolib.transfer.grouped).
"""

from __future__ import annotations

import functools

import torch
from torch import nn


def pass_macs(module: nn.Module, shape: tuple[int, ...], train: bool, input_grad: bool = False) -> float:
    """Multiply-accumulates of one (1, *shape) input through `module` (module docstring)."""
    from torch.utils.flop_counter import FlopCounterMode

    module = module.to("meta")
    x = torch.zeros((1, *shape), device="meta", requires_grad=train and input_grad)
    with FlopCounterMode(display=False) as counter:
        if train:
            module(x).float().sum().backward()
        else:
            with torch.no_grad():
                module(x)
    return counter.get_total_flops() / 2.0


@functools.lru_cache(maxsize=8)
def meta_backbone(name: str):
    """Registry backbone `name` with no weights, on the meta device, frozen, in eval mode."""
    from reprolib.models.build import get_backbone

    with torch.device("meta"):
        backbone = get_backbone(name, weights=None)
    return backbone.eval().requires_grad_(False)


@functools.lru_cache(maxsize=8)
def backbone_macs(name: str) -> tuple[float, float]:
    """(forward, forward + backward to the input) multiply-accumulates of one image through backbone `name`."""
    backbone = meta_backbone(name)
    shape = (backbone.channels, backbone.input_size, backbone.input_size)
    return pass_macs(backbone, shape, train=False), pass_macs(backbone, shape, train=True, input_grad=True)


@functools.lru_cache(maxsize=8)
def activation_bytes(name: str) -> int:
    """Bytes autograd keeps per image for the backward to the input through the frozen backbone
    `name` under bf16 autocast (a prompt's training step on CUDA): measured on the CPU, with
    random weights, as the difference between batches of 3 and 1 (weights and buffers cancel);
    tensors saved twice are counted once. ResNet-50 at 224 px: 41.7 MiB."""
    from reprolib.models.build import get_backbone

    backbone = get_backbone(name, weights=None).eval().requires_grad_(False)

    def saved(n: int) -> int:
        seen: set[int] = set()

        def pack(t: torch.Tensor) -> torch.Tensor:
            seen.add((t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()))
            return t

        x = torch.rand(n, backbone.channels, backbone.input_size, backbone.input_size, requires_grad=True)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.autocast("cpu", dtype=torch.bfloat16):
            backbone(x)
        return sum(nbytes for _, nbytes in seen)

    return (saved(3) - saved(1)) // 2
