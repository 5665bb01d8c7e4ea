"""Sparsity: masks, lottery tickets by IMP and pruning baselines, and loading tickets.

- `reprolib.sparsity.masks`: the mask type, pruning (global magnitude, random) and our
  on-disk layout `<artifacts>/tickets/<kind>/level_XX/{model.pth, mask.pth, sparsity.json}`.
- `reprolib.sparsity.imp`: `make_tickets(profile, levels, kinds)` (IMP with rewinding,
  one-shot magnitude and random baselines), idempotent and resumable.
- `reprolib.sparsity.network`: `get_network(profile, network, kind, level, pretrained_dir)`.
- `reprolib.sparsity.load`: `load_ticket(path, arch, state)` for foreign ticket formats.
Submodules import torch; this package file does not, so `import reprolib.sparsity` is cheap.
"""

from __future__ import annotations

from typing import Any


def get_network(*args: Any, **kwargs: Any):
    """See reprolib.sparsity.network.get_network."""
    from reprolib.sparsity.network import get_network as _get_network

    return _get_network(*args, **kwargs)


def make_tickets(*args: Any, **kwargs: Any):
    """See reprolib.sparsity.imp.make_tickets."""
    from reprolib.sparsity.imp import make_tickets as _make_tickets

    return _make_tickets(*args, **kwargs)


__all__ = ["get_network", "make_tickets"]
