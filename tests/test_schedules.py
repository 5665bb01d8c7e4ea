"""reprolib.schedules: the warm-up + cosine schedule (upstream, Reprogrammer), multistep, and the step decay of the Reprogrammer baselines."""

import math
import random

import pytest
import torch

from reprolib.schedules import multistep, step_decay, warmup_cosine, warmup_lr
from reprolib.sparsity.upstream import UpstreamRecipe, learning_rate


def test_warmup_then_half_cosine_values():
    assert warmup_cosine(1.0, 0, 100, 10) == pytest.approx(0.1)
    assert warmup_cosine(1.0, 9, 100, 10) == pytest.approx(1.0)
    assert warmup_cosine(1.0, 10, 100, 10) == 1.0                 # cosine starts at the base rate
    assert warmup_cosine(1.0, 55, 100, 10) == pytest.approx(0.5)  # half way through the decay
    assert warmup_cosine(2.0, 100, 100, 10) == pytest.approx(0.0, abs=1e-15)
    assert warmup_lr(0.3, 4, 5) == pytest.approx(0.3)


def test_both_old_formulas_give_the_same_bits():
    # The upstream loop wrote 0.5 * lr * (1 + cos), the Reprogrammer loop 0.5 * (1 + cos) * lr;
    # halving is exact in floating point, so one function serves both without changing a number.
    rng = random.Random(0)
    for _ in range(2000):
        lr, total = rng.uniform(1e-6, 1.0), rng.randint(2, 5000)
        warmup, step = rng.randint(0, total - 1), rng.randint(0, total)
        c = 1.0 + math.cos(math.pi * ((step - warmup) / max(1, total - warmup)))
        old_upstream = lr * (step + 1) / warmup if step < warmup else 0.5 * lr * c
        old_reprogrammer = lr * (step + 1) / warmup if step < warmup else 0.5 * c * lr
        assert warmup_cosine(lr, step, total, warmup) == old_upstream == old_reprogrammer


def test_upstream_recipe_schedules():
    cosine = UpstreamRecipe(lr=0.1, warmup_epochs=0.5)
    assert learning_rate(cosine, 0, 40, 10) == pytest.approx(0.02)       # warm-up over 5 steps
    assert learning_rate(cosine, 5, 40, 10) == pytest.approx(0.1)
    multi = UpstreamRecipe(lr=0.1, warmup_epochs=0.0, schedule="multistep")
    assert [learning_rate(multi, i, 40, 10) for i in (0, 19, 20, 29, 30)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001])
    assert learning_rate(UpstreamRecipe(lr=0.1, warmup_epochs=0.0, schedule="constant"), 33, 40, 10) == 0.1


def test_multistep_drops_at_the_milestone_epochs():
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    scheduler = multistep(optimizer, [2, 3], 0.1)
    seen = []
    for _ in range(4):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([0.01, 0.01, 0.001, 0.0001])


def test_step_decay_values_at_the_milestones():
    # RPR's baselines: x0.5 / x0.2 / x0.1 of the base rate once 40 / 70 / 80% of the steps are done.
    milestones, factors = [0.4, 0.7, 0.8], [0.5, 0.2, 0.1]
    lrs = {k: step_decay(0.01, k, 100, milestones, factors) for k in (0, 39, 40, 69, 70, 79, 80, 99)}
    assert lrs == pytest.approx({0: 0.01, 39: 0.01, 40: 0.005, 69: 0.005, 70: 0.002, 79: 0.002,
                                 80: 0.001, 99: 0.001}, rel=1e-12)
    # a milestone that is not a whole step (40% of 7 = 2.8) takes effect at the first step past it
    assert [step_decay(1.0, k, 7, milestones, factors) for k in range(7)] == pytest.approx(
        [1.0, 1.0, 1.0, 0.5, 0.5, 0.2, 0.1])
    assert step_decay(0.3, 5, 10, [], []) == 0.3                   # no milestones: constant
