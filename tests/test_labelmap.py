"""Output label mapping: frequency matrix, greedy matching, RLM, and the ILM/FLM policies."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import Tensor, nn

from reprolib.errors import ReprolibError
from reprolib.transfer.labelmap import (
    LABEL_MAPS,
    LabelMapper,
    default_label_map,
    get_label_map,
    compute_source_predictions,
    frequency_matrix,
    greedy_label_map,
    map_logits,
    ordered_batches,
    random_label_map,
)
from reprolib.prompts import PaddingPrompt, SMMPrompt


def _one_hot_logits(predictions: list[int], num_source: int) -> Tensor:
    return torch.nn.functional.one_hot(torch.tensor(predictions), num_source).float()


def test_frequency_matrix_counts_and_keeps_absent_classes() -> None:
    logits = _one_hot_logits([0, 0, 2, 1, 2, 2], num_source=4)
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    freq = frequency_matrix(logits, labels, num_classes=3)  # class 2 never appears
    expected = torch.tensor([[2, 0, 0], [0, 1, 0], [1, 2, 0], [0, 0, 0]])
    assert freq.dtype == torch.long and torch.equal(freq, expected)
    assert freq.sum() == 6
    with pytest.raises(ReprolibError, match="0..2"):
        frequency_matrix(logits, torch.tensor([0, 0, 0, 1, 1, 3]), num_classes=3)


def test_greedy_takes_global_maximum_not_the_optimal_assignment() -> None:
    # Greedy takes 10 at (0, 0), leaving 1 at (1, 1): total 11; Hungarian would pick 9 + 9.
    freq = torch.tensor([[10, 9], [9, 1]])
    assert greedy_label_map(freq).tolist() == [0, 1]
    freq = torch.tensor([[1, 0, 7], [5, 2, 0], [0, 6, 3], [0, 0, 0]])
    # 7 -> t2:s0, then 6 -> t1:s2, then 5 -> t0:s1.
    assert greedy_label_map(freq).tolist() == [1, 2, 0]


def test_greedy_ties_go_to_the_lowest_source_then_target() -> None:
    freq = torch.tensor([[0, 0], [4, 4], [4, 4]])
    # first maximum in row-major order: (1, 0); then row 1 and column 0 go: (2, 1).
    assert greedy_label_map(freq).tolist() == [1, 2]
    freq = torch.tensor([[3, 3, 0], [3, 3, 0], [0, 0, 1]])
    assert greedy_label_map(freq).tolist() == [0, 1, 2]


def test_greedy_all_zero_and_square_and_brute_force() -> None:
    assert greedy_label_map(torch.zeros(5, 3, dtype=torch.long)).tolist() == [0, 1, 2]
    assert greedy_label_map(torch.zeros(3, 3, dtype=torch.long)).tolist() == [0, 1, 2]
    square = torch.tensor([[0, 5, 0], [0, 0, 5], [5, 0, 0]])  # K = S
    assert greedy_label_map(square).tolist() == [2, 0, 1]
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):  # compare with a literal re-statement of the rule
        freq = torch.randint(0, 4, (6, 4), generator=gen)
        rows, cols, expected = set(range(6)), set(range(4)), {}
        for _ in range(4):
            best = max((int(freq[s, t]), -s, -t) for s, t in itertools.product(sorted(rows), sorted(cols)))
            s, t = -best[1], -best[2]
            expected[t] = s
            rows.discard(s)
            cols.discard(t)
        got = greedy_label_map(freq)
        assert got.tolist() == [expected[t] for t in range(4)]
        assert len(set(got.tolist())) == 4


def test_k_greater_than_s_is_an_error() -> None:
    with pytest.raises(ReprolibError, match="K=4 > S=3"):
        greedy_label_map(torch.zeros(3, 4))
    with pytest.raises(ReprolibError, match="K=4 > S=3"):
        random_label_map(3, 4, seed=0)
    with pytest.raises(ReprolibError, match="K=4 > S=3"):
        LabelMapper("ilm", 3, 4)


def test_random_label_map_is_seeded_and_distinct() -> None:
    a, b, c = random_label_map(1000, 100, 1), random_label_map(1000, 100, 1), random_label_map(1000, 100, 2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len(set(a.tolist())) == 100 and 0 <= int(a.min()) and int(a.max()) < 1000
    assert sorted(random_label_map(5, 5, 3).tolist()) == [0, 1, 2, 3, 4]


def test_map_logits_selects_columns_in_target_order() -> None:
    logits = torch.arange(12.0).view(2, 6)
    assert map_logits(logits, torch.tensor([5, 0, 3])).tolist() == [[5.0, 0.0, 3.0], [11.0, 6.0, 9.0]]


class _SourceByBrightness(nn.Module):
    """A frozen 'backbone' whose top-1 source class is set by the mean brightness of its input."""

    def __init__(self, num_source: int = 8):
        super().__init__()
        self.num_source = num_source

    def forward(self, x: Tensor) -> Tensor:
        level = (x.mean(dim=(1, 2, 3)) * self.num_source).clamp(0, self.num_source - 1).long()
        return torch.nn.functional.one_hot(level, self.num_source).float()


def _batches(x: Tensor, y: Tensor, size: int = 4):
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


def _brightness_data() -> tuple[Tensor, Tensor]:
    # class 0: black images, class 1: white images, 4 each; 4x4 images padded into 8x8.
    x = torch.cat([torch.zeros(4, 1, 4, 4), torch.ones(4, 1, 4, 4)])
    return x, torch.tensor([0] * 4 + [1] * 4)


def test_flm_paper_uses_zero_frame_and_flm_grey_the_initial_prompt() -> None:
    x, y = _brightness_data()
    backbone, prompt = _SourceByBrightness(8), PaddingPrompt(4, 8, channels=1)
    # zero frame: black -> mean 0 -> source 0; white -> mean 16/64 -> source 2.
    flm = LabelMapper("flm", 8, 2).initial(backbone, prompt, _batches(x, y))
    assert flm.tolist() == [0, 2]
    # grey frame (0.5 on 48 of 64 pixels): black -> 0.375 -> 3; white -> 0.625 -> 5.
    grey = LabelMapper("flm_grey", 8, 2).initial(backbone, prompt, _batches(x, y))
    assert grey.tolist() == [3, 5]


def test_ilm_recomputes_each_epoch_and_flm_stays_fixed() -> None:
    x, y = _brightness_data()
    backbone, prompt = _SourceByBrightness(8), PaddingPrompt(4, 8, channels=1)
    ilm, flm = LabelMapper("ilm", 8, 2), LabelMapper("flm_grey", 8, 2)
    assert ilm.initial(backbone, prompt, _batches(x, y)).tolist() == [3, 5]
    assert flm.initial(backbone, prompt, _batches(x, y)).tolist() == [3, 5]
    assert ilm.before_epoch(0, backbone, prompt, iter(())).tolist() == [3, 5]  # reuses epoch-0 map
    with torch.no_grad():
        prompt.theta.fill_(-20.0)  # frame -> ~0: like the zero-padded input
    assert ilm.before_epoch(1, backbone, prompt, _batches(x, y)).tolist() == [0, 2]
    assert flm.before_epoch(1, backbone, prompt, _batches(x, y)).tolist() == [3, 5]
    assert ilm.recomputes and not flm.recomputes


def test_ordered_batches_walk_the_set_in_order_and_restart_each_pass() -> None:
    x, y = torch.arange(10.0).view(10, 1, 1, 1), torch.arange(10) % 3
    first = list(ordered_batches(x, y, 4))
    assert [len(b) for b, _ in first] == [4, 4, 2]
    assert torch.equal(torch.cat([b for b, _ in first]).flatten(), torch.arange(10.0))
    assert torch.equal(torch.cat([t for _, t in first]), y)
    again = list(ordered_batches(x, y, 4))   # a fresh pass, as every ILM remapping needs
    assert all(torch.equal(a, b) for (a, _), (b, _) in zip(first, again))
    # ILM over ordered batches gives the same map as over one batch of everything.
    bx, by = _brightness_data()
    backbone, prompt = _SourceByBrightness(8), PaddingPrompt(4, 8, channels=1)
    assert (LabelMapper("ilm", 8, 2).initial(backbone, prompt, ordered_batches(bx, by, 1)).tolist()
            == LabelMapper("ilm", 8, 2).initial(backbone, prompt, [(bx, by)]).tolist() == [3, 5])


def test_rlm_policy_and_unknown_name() -> None:
    mapper = LabelMapper("rlm", 50, 10, seed=7)
    first = mapper.initial(None, None, None)
    assert torch.equal(first, random_label_map(50, 10, 7))
    assert torch.equal(mapper.before_epoch(3), first)
    with pytest.raises(ReprolibError, match="unknown label map 'hungarian'; valid choices: " + ", ".join(LABEL_MAPS)):
        LabelMapper("hungarian", 50, 10)
    assert get_label_map(default_label_map()).default


class _CountingPasses:
    """Training batches that count the passes made over them (one per `iter`)."""

    def __init__(self, batches: list, counter: list[int]):
        self.batches, self.counter = batches, counter

    def __iter__(self):
        self.counter[0] += 1
        return iter(self.batches)


@pytest.mark.parametrize("name", LABEL_MAPS)
def test_every_label_map_entry_maps_and_costs_what_it_says(name: str) -> None:
    """A run of E epochs makes exactly `mapping_passes(E)` passes over the training set, recomputes
    as the entry says, and the sweep's cost model counts the same passes."""
    from reprolib.sweep.cost import run_cost
    from reprolib.transfer.registry import role_method

    kind, epochs, passes = get_label_map(name), 3, [0]
    assert kind.name == name and kind.display and kind.summary
    x, y = _brightness_data()
    backbone, prompt = _SourceByBrightness(8), PaddingPrompt(4, 8, channels=1)
    mapper = LabelMapper(name, 8, 2, seed=1)
    maps = [mapper.initial(backbone, prompt, _CountingPasses(_batches(x, y), passes))]
    for epoch in range(epochs):
        with torch.no_grad():
            prompt.theta.fill_(-20.0 * epoch)   # the prompt learns between epochs
        maps.append(mapper.before_epoch(epoch, backbone, prompt, _CountingPasses(_batches(x, y), passes)))
    assert passes[0] == kind.mapping_passes(epochs) and mapper.recomputes == kind.recomputes
    assert all(sorted(set(m.tolist())) == sorted(m.tolist()) and len(m) == 2 for m in maps)   # K distinct sources
    if not kind.recomputes:
        assert all(torch.equal(m, maps[0]) for m in maps)
    if not kind.reads_training_set:
        assert torch.equal(LabelMapper(name, 8, 2, seed=1).initial(None, None, None), maps[0])
    cost = run_cost(role_method("prompt").name, name, 100, 50, epochs, 7)
    assert cost.fwd == epochs * 50 + kind.mapping_passes(epochs) * 100 + 7


def test_flm_grey_costs_the_same_mapping_pass_as_flm() -> None:
    from reprolib.sweep.cost import run_cost

    assert get_label_map("flm_grey").mapping_passes(3) == get_label_map("flm").mapping_passes(3) == 1
    assert run_cost("vp", "flm_grey", 100, 50, 3, 7).fwd == run_cost("vp", "flm", 100, 50, 3, 7).fwd == 257


def test_source_predictions_run_in_eval_mode_without_grad_and_restore_modes() -> None:
    torch.manual_seed(0)
    prompt = SMMPrompt(8, 2, channels=1)
    prompt.train()
    running = prompt.mask_generator[1].running_mean.clone()
    seen: list[bool] = []

    def model_fn(inp: Tensor) -> Tensor:
        out = prompt(inp)
        seen.append(prompt.training or torch.is_grad_enabled())
        return out.flatten(1)[:, :5]

    x = torch.rand(6, 1, 8, 8)
    preds, labels = compute_source_predictions(model_fn, _batches(x, torch.arange(6) % 2), modules=[prompt])
    assert seen == [False, False] and preds.shape == (6,) and labels.tolist() == [0, 1, 0, 1, 0, 1]
    assert torch.equal(prompt.mask_generator[1].running_mean, running)  # BN statistics untouched
    assert prompt.training and prompt.mask_generator[1].training
    with pytest.raises(ReprolibError, match="no training batches"):
        compute_source_predictions(model_fn, [])
