"""Sparsity: masks, lottery tickets (IMP here, or one-shot pruned pretrained weights), loading tickets.

- `reprolib.sparsity.masks`: the mask type, pruning (global magnitude, random) and our
  on-disk layout `<artifacts>/tickets/<kind>/level_XX/{model.pth, mask.pth, sparsity.json}`.
- `reprolib.sparsity.recipe`: `TicketRecipe` (the profile's `tickets:`), `target_density`.
- `reprolib.sparsity.tickets`: `make_tickets(profile, levels, kinds)`, made the way the
  backbone's registry spec says: `imp` (IMP with rewinding, one-shot magnitude and random
  baselines, retrained) or `oneshot` (`reprolib.sparsity.oneshot`); idempotent, resumable.
- `reprolib.sparsity.network`: `get_network(profile, network, kind, level, pretrained_dir)`.
- `reprolib.sparsity.load`: `load_ticket(path, arch, state)` / `read_ticket` for every
  common ticket format (RLT, open_lth, torch prune, ours).
- `reprolib.sparsity.keymaps`: sparseml / SparseZoo key names onto torchvision's, STR's soft
  thresholds; `load_ticket(..., mask="zeros")` reads masks held as exact zeros.
- `reprolib.sparsity.imported` / `catalog`: `tickets import` / `tickets fetch` (the curated table
  of published checkpoints, reprolib/published/sparse_checkpoints.csv) into
  `<artifacts>/tickets/imported/<name>/`.
- `reprolib.sparsity.imagenet` / `imagenet_prune`: ImageNet top-1 of every ticket (`tickets
  evaluate --imagenet DIR`), IMP / GMP tickets made on ImageNet (`tickets prune`, torchrun, submitit).
- `reprolib.sparsity.cli` / `upstream_cli`: the `tickets` and `upstream` commands.

Submodules import torch; this package file does not, so `import reprolib.sparsity` is
cheap: the names below load their module on first use (the reason for the imports inside
`__getattr__`).
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "get_network":
        from reprolib.sparsity.network import get_network

        return get_network
    if name == "make_tickets":
        from reprolib.sparsity.tickets import make_tickets

        return make_tickets
    if name == "load_ticket":
        from reprolib.sparsity.load import load_ticket

        return load_ticket
    if name == "read_ticket":
        from reprolib.sparsity.load import read_ticket

        return read_ticket
    raise AttributeError(f"module 'reprolib.sparsity' has no attribute {name!r}")


__all__ = ["get_network", "make_tickets", "load_ticket", "read_ticket"]
