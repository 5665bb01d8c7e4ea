"""Learning-rate schedules shared by every training loop (upstream, tickets, transfer, Reprogrammer).

- `warmup_lr` / `warmup_cosine`: linear warm-up over `warmup` steps ((step + 1) / warmup of
  the base rate), then a half cosine from the base rate to 0 at step `total`. Per step (the
  upstream and Reprogrammer loops set each parameter group's lr before every step).
- `multistep`: torch's MultiStepLR stepped once per epoch, as the public VP / LP code does.
"""

from __future__ import annotations

import math


def warmup_lr(base_lr: float, step: int, warmup: int) -> float:
    """The linear warm-up part: step k < warmup trains at base_lr * (k + 1) / warmup."""
    return base_lr * (step + 1) / warmup


def warmup_cosine(base_lr: float, step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then half-cosine decay to 0 at `total` steps."""
    if step < warmup:
        return warmup_lr(base_lr, step, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * progress))


def multistep(optimizer, milestones: list[int], gamma: float):
    """MultiStepLR stepped once per epoch (x gamma at each milestone epoch), as in the public code."""
    import torch   # this module stays free of torch for the per-step schedules

    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=gamma)
