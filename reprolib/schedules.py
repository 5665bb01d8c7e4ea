"""Learning-rate schedules shared by every training loop (upstream, tickets, transfer, Reprogrammer).

- `warmup_lr` / `warmup_cosine`: linear warm-up over `warmup` steps ((step + 1) / warmup of
  the base rate), then a half cosine from the base rate to 0 at step `total`. Per step (the
  upstream and Reprogrammer loops set each parameter group's lr before every step).
- `multistep`: torch's MultiStepLR stepped once per epoch, as the public VP / LP code does.
- `step_decay`: the base rate times a factor that drops at fractions of all steps (per step;
  the Reprogrammer baselines: x0.5 / x0.2 / x0.1 from 40 / 70 / 80% of the steps, the public
  RPR code's linear-probe and fine-tuning schedule, docs/methods.md s.6).
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


def step_decay(base_lr: float, step: int, total: int, milestones: list[float], factors: list[float]) -> float:
    """base_lr times the factor of the last milestone reached: step k uses factors[i] once
    k >= milestones[i] * total (fractions of `total`, increasing); before the first, base_lr.
    The factors multiply the base rate, not each other (0.5, 0.2, 0.1 of it, as in RPR)."""
    factor = 1.0
    for fraction, milestone_factor in zip(milestones, factors):
        if step >= fraction * total:
            factor = milestone_factor
    return base_lr * factor


def multistep(optimizer, milestones: list[int], gamma: float):
    """MultiStepLR stepped once per epoch (x gamma at each milestone epoch), as in the public code."""
    import torch   # this module stays free of torch for the per-step schedules

    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=gamma)
