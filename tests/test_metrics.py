"""Calibration and OOD-detection metrics against hand computations, torchmetrics and sklearn."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.metrics import roc_auc_score
from torchmetrics.classification import MulticlassCalibrationError

from reprolib.scores import metrics
from reprolib.errors import ReprolibError

# Four samples, three classes; confidences 0.9, 0.85, 0.88, 0.5 (none on a bin edge).
HAND_PROBS = torch.tensor([[0.90, 0.05, 0.05],    # label 0: correct, bin 13
                           [0.85, 0.10, 0.05],    # label 1: wrong,   bin 12
                           [0.04, 0.88, 0.08],    # label 1: correct, bin 13
                           [0.50, 0.30, 0.20]], dtype=torch.float64)   # label 2: wrong, bin 7
HAND_LABELS = torch.tensor([0, 1, 1, 2])


def _torchmetrics(probs: torch.Tensor, labels: torch.Tensor, norm: str) -> float:
    metric = MulticlassCalibrationError(num_classes=probs.shape[1], n_bins=15, norm=norm)
    return float(metric(probs, labels))


def _random_cases():
    g = torch.Generator().manual_seed(7)
    n, k = 600, 10
    labels = torch.randint(0, k, (n,), generator=g)
    uniform = torch.rand(n, k, generator=g)
    yield "random simplex", uniform / uniform.sum(1, keepdim=True), labels
    yield "softmax of scaled logits", (3.0 * torch.randn(n, k, generator=g)).softmax(1), labels
    # Realistic: mostly correct, moderately over-confident (logit boost on the true class).
    logits = torch.randn(n, k, generator=g)
    correct = torch.rand(n, generator=g) < 0.8
    logits[torch.arange(n)[correct], labels[correct]] += 4.0
    yield "mostly correct", (1.5 * logits).softmax(1), labels


@pytest.mark.parametrize("norm, fn", [("l1", metrics.ece), ("max", metrics.mce)])
def test_ece_mce_agree_with_torchmetrics(norm, fn):
    for name, probs, labels in _random_cases():
        assert fn(probs, labels) == pytest.approx(_torchmetrics(probs, labels, norm), abs=1e-6), name


def test_hand_computed_ece_mce_nll_brier():
    # bin 13: conf (0.9 + 0.88) / 2 = 0.89, acc 1 -> 0.5 * 0.11; bin 12: 0.25 * 0.85; bin 7: 0.25 * 0.5
    assert metrics.ece(HAND_PROBS, HAND_LABELS) == pytest.approx(0.5 * 0.11 + 0.25 * 0.85 + 0.25 * 0.5, abs=1e-12)
    assert metrics.mce(HAND_PROBS, HAND_LABELS) == pytest.approx(0.85, abs=1e-12)
    expected_nll = -(math.log(0.9) + math.log(0.1) + math.log(0.88) + math.log(0.2)) / 4
    assert metrics.nll(HAND_PROBS, HAND_LABELS) == pytest.approx(expected_nll, abs=1e-12)
    # per-sample sum_k (p_k - onehot_k)^2: 0.015, 1.535, 0.0224, 0.98
    assert metrics.brier(HAND_PROBS, HAND_LABELS) == pytest.approx((0.015 + 1.535 + 0.0224 + 0.98) / 4, abs=1e-12)


def test_reliability_bins_hand_example():
    bins = metrics.reliability_bins(HAND_PROBS, HAND_LABELS)
    assert len(bins["counts"]) == len(bins["confidence"]) == len(bins["accuracy"]) == 15
    assert bins["edges"][0] == 0.0 and bins["edges"][-1] == 1.0 and len(bins["edges"]) == 16
    assert bins["counts"] == [0] * 7 + [1, 0, 0, 0, 0, 1, 2, 0]
    assert bins["confidence"][13] == pytest.approx(0.89) and bins["accuracy"][13] == 1.0
    assert bins["accuracy"][12] == 0.0 and bins["confidence"][7] == pytest.approx(0.5)
    assert bins["confidence"][0] == 0.0 and not any(math.isnan(v) for v in bins["confidence"])


def test_confidence_exactly_one_is_in_the_last_guo_bin():
    probs = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.95, 0.05], [0.95, 0.05]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 0])
    # Guo: all four in bin 14 = (14/15, 1]: mean conf 0.975, accuracy 0.75.
    assert metrics.ece(probs, labels) == pytest.approx(0.225, abs=1e-12)
    assert metrics.reliability_bins(probs, labels)["counts"][14] == 4
    # torchmetrics puts 1.0 in an extra bin: 0.5 * |1 - 0.5| + 0.5 * |0.95 - 1| = 0.275.
    assert _torchmetrics(probs.float(), labels, "l1") == pytest.approx(0.275, abs=1e-6)


def test_bin_edges_are_right_closed():
    # c = 0.5 = 7.5 / 15 is interior; c = 0.6 = 9 / 15 must go to bin 8 = (8/15, 9/15].
    probs = torch.tensor([[0.6, 0.4], [0.6, 0.4]], dtype=torch.float64)
    counts = metrics.reliability_bins(probs, torch.tensor([0, 0]))["counts"]
    assert counts[8] == 2


def test_refuses_logits_and_bad_shapes():
    logits = torch.tensor([[2.0, 1.0, 0.2], [0.1, 0.5, 0.5]])   # non-negative, rows sum to 3.2 and 1.1
    with pytest.raises(ReprolibError, match="expects probabilities.*3.2.*softmax"):
        metrics.ece(logits, torch.tensor([0, 1]))
    with pytest.raises(ReprolibError, match="negative entry"):
        metrics.mce(torch.tensor([[1.5, -0.5]]), torch.tensor([0]))
    probs = torch.tensor([[0.5, 0.5]])
    with pytest.raises(ReprolibError, match="shape"):
        metrics.ece(probs, torch.tensor([0, 1]))
    with pytest.raises(ReprolibError, match="label 2"):
        metrics.brier(probs, torch.tensor([2]))
    with pytest.raises(ReprolibError, match="shape"):
        metrics.nll(torch.tensor([0.5, 0.5]), torch.tensor([0]))
    with pytest.raises(ReprolibError, match="integer"):
        metrics.ece(probs, torch.tensor([0.0]))
    with pytest.raises(ReprolibError, match="n_bins"):
        metrics.ece(probs, torch.tensor([0]), n_bins=0)


def test_calibration_summary_from_logits():
    _, probs, labels = list(_random_cases())[2]
    logits = probs.log() * 2.0 + 1.0      # any logits whose softmax is a sharper version
    p64 = logits.double().softmax(1)
    summary = metrics.calibration_summary(logits, labels, legacy_batch_size=100)
    assert summary["accuracy"] == pytest.approx(float((p64.argmax(1) == labels).double().mean()))
    assert summary["ece"] == pytest.approx(metrics.ece(p64, labels), abs=1e-12)
    assert summary["mce"] == pytest.approx(metrics.mce(p64, labels), abs=1e-12)
    assert summary["nll"] == pytest.approx(metrics.nll(p64, labels), rel=1e-9)
    assert summary["brier"] == pytest.approx(metrics.brier(p64, labels), abs=1e-12)
    assert summary["reliability"]["counts"] == metrics.reliability_bins(p64, labels)["counts"]
    assert summary["legacy_rlt_ece"] == metrics.legacy_rlt_ece(logits, labels, 100)
    assert "legacy_rlt_ece" not in metrics.calibration_summary(logits, labels)


def test_legacy_rlt_ece_hand_example():
    logits = torch.tensor([[3.0, 1.0], [0.5, 2.0], [-1.0, -2.0]])
    labels = torch.tensor([0, 0, 0])
    # one batch: last bin {3.0 ok, 2.0 wrong}: 2/3 * |2.5 - 0.5|; first bin {-1.0 ok}: 1/3 * |-1 - 1|
    assert metrics.legacy_rlt_ece(logits, labels, batch_size=3) == pytest.approx(2.0 / 3)
    # batches of 2: (|2.5 - 0.5|) + (|-1 - 1|) = 4, divided by 3 samples
    assert metrics.legacy_rlt_ece(logits, labels, batch_size=2) == pytest.approx(4.0 / 3)


def test_legacy_rlt_ece_scales_with_logits_and_inverse_batch_size():
    g = torch.Generator().manual_seed(3)
    n, k = 512, 10
    labels = torch.randint(0, k, (n,), generator=g)
    logits = torch.randn(n, k, generator=g) + 2.0       # every max logit is > 1: all in the last bin
    logits[torch.arange(n), labels] += 1.0
    assert float(logits.max(1).values.min()) > 1.0
    mean_conf = float(logits.max(1).values.double().mean())
    acc = float((logits.argmax(1) == labels).double().mean())
    for batch in (32, 64, 128):
        # all batches full and in one bin: sum_b |mean_b(c) - acc_b| / N = (mean c - acc) / batch
        assert metrics.legacy_rlt_ece(logits, labels, batch) == pytest.approx((mean_conf - acc) / batch, rel=1e-9)
        assert metrics.legacy_rlt_ece(3 * logits, labels, batch) == pytest.approx((3 * mean_conf - acc) / batch,
                                                                                   rel=1e-9)
    # It is no calibration measure: far below the raw-logit ECE of the whole set, unrelated to the proper ECE.
    raw_whole_set = metrics.legacy_rlt_ece(logits, labels, n) * n
    assert raw_whole_set == pytest.approx(mean_conf - acc, rel=1e-9)
    assert metrics.legacy_rlt_ece(logits, labels, 128) < 0.01 * raw_whole_set
    with pytest.raises(ReprolibError, match="batch_size"):
        metrics.legacy_rlt_ece(logits, labels, 0)


def test_ood_auroc_matches_sklearn_with_ties():
    g = torch.Generator().manual_seed(11)
    for trial in range(5):
        id_scores = torch.randint(0, 6, (50 + trial,), generator=g).float() + 0.5
        ood_scores = torch.randint(0, 5, (37,), generator=g).float()
        if trial % 2:
            id_scores, ood_scores = torch.randn(80, generator=g) + 0.7, torch.randn(60, generator=g)
        y_true = [1] * len(id_scores) + [0] * len(ood_scores)
        expected = roc_auc_score(y_true, torch.cat([id_scores, ood_scores]).numpy())
        assert metrics.ood_auroc(id_scores, ood_scores) == pytest.approx(expected, abs=1e-12)
    assert metrics.ood_auroc(torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0])) == 1.0
    assert metrics.ood_auroc(torch.tensor([1.0]), torch.tensor([1.0])) == 0.5


def test_fpr_at_95_tpr_hand_examples():
    id_scores = torch.arange(1, 21).float()               # k = ceil(0.95 * 20) = 19 -> threshold 2
    ood_scores = torch.tensor([0.0, 1.0, 2.0, 2.5, 3.0])  # >= 2: three of five
    assert metrics.fpr_at_95_tpr(id_scores, ood_scores) == pytest.approx(0.6)
    # n_id = 10: k = ceil(9.5) = 10 -> threshold is the smallest ID score (1)
    assert metrics.fpr_at_95_tpr(torch.arange(1, 11).float(), torch.tensor([0.5, 1.0, 0.9, 4.0])) == 0.5
    # ties at the threshold: all ID scores equal, OOD at that score counts as a false positive
    assert metrics.fpr_at_95_tpr(torch.ones(20), torch.tensor([1.0, 0.999])) == 0.5
    with pytest.raises(ReprolibError, match="non-finite"):
        metrics.fpr_at_95_tpr(torch.tensor([float("nan")]), torch.tensor([1.0]))
    with pytest.raises(ReprolibError, match="1-D"):
        metrics.ood_auroc(torch.ones(2, 2), torch.ones(3))


# ----------------------------------------------------------------------------- adaptive and classwise ECE

def test_adaptive_ece_hand_examples():
    # sorted confidences 0.5 (wrong), 0.85 (wrong), 0.88 (right), 0.9 (right)
    assert metrics.adaptive_ece(HAND_PROBS, HAND_LABELS, n_bins=1) == pytest.approx(abs(0.5 - 0.7825), abs=1e-12)
    assert metrics.adaptive_ece(HAND_PROBS, HAND_LABELS, n_bins=2) == pytest.approx(
        0.5 * 0.675 + 0.5 * 0.11, abs=1e-12)
    # N = 4 < 15 bins: each sample alone in a bin, so the mean of |correct - confidence|
    assert metrics.adaptive_ece(HAND_PROBS, HAND_LABELS) == pytest.approx((0.1 + 0.85 + 0.12 + 0.5) / 4, abs=1e-12)
    # N = 4 in 3 bins: sizes 1, 1, 2 (floor(b N / 3) starts), the larger bin last
    probs = torch.tensor([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.8, 0.2]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 0])     # confidences 0.9 ok, 0.7 wrong, 0.6 ok, 0.8 ok
    assert metrics.adaptive_ece(probs, labels, n_bins=3) == pytest.approx(0.25 * 0.4 + 0.25 * 0.7 + 0.5 * 0.15,
                                                                          abs=1e-12)


def test_adaptive_ece_ties_keep_the_sample_order():
    probs = torch.tensor([[0.6, 0.4]] * 3, dtype=torch.float64)   # three equal confidences, 2 bins of 1 and 2
    assert metrics.adaptive_ece(probs, torch.tensor([0, 1, 0]), n_bins=2) == pytest.approx(0.4 / 3 + 2 / 3 * 0.1)
    assert metrics.adaptive_ece(probs, torch.tensor([1, 0, 0]), n_bins=2) == pytest.approx(0.6 / 3 + 2 / 3 * 0.4)
    assert metrics.adaptive_ece(probs, torch.tensor([0, 1, 0]), n_bins=1) == pytest.approx(abs(2 / 3 - 0.6))


def test_classwise_ece_hand_examples():
    # class 0: p0 = .9 .85 .04 .5 (labels 1 0 0 0), each in its own bin: (.1 + .85 + .04 + .5) / 4
    # class 1: p1 = .05 .1 .88 .3 (labels 0 1 1 0), own bins: (.05 + .9 + .12 + .3) / 4
    # class 2: p2 = .05 .05 .08 .2 (labels 0 0 0 1): the two .05 share bin 0: (2 * .05 + .08 + .8) / 4
    expected = ((0.1 + 0.85 + 0.04 + 0.5) / 4 + (0.05 + 0.9 + 0.12 + 0.3) / 4 + (0.1 + 0.08 + 0.8) / 4) / 3
    assert expected == pytest.approx(0.32)
    assert metrics.classwise_ece(HAND_PROBS, HAND_LABELS) == pytest.approx(expected, abs=1e-12)
    # one bin: mean over classes of |mean p_k - share of class k|
    assert metrics.classwise_ece(HAND_PROBS, HAND_LABELS, n_bins=1) == pytest.approx(
        (abs(0.5725 - 0.25) + abs(0.3325 - 0.5) + abs(0.095 - 0.25)) / 3, abs=1e-12)


def _calibrated(n: int, k: int, seed: int, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities and labels drawn from them (perfectly calibrated), optionally re-sharpened after."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=g, dtype=torch.float64) * 2.0
    labels = torch.multinomial(logits.softmax(1), 1, generator=g).squeeze(1)
    return (logits / temperature).softmax(1), labels


@pytest.mark.parametrize("fn", [metrics.adaptive_ece, metrics.classwise_ece])
def test_new_eces_are_near_zero_when_calibrated_and_grow_when_overconfident(fn):
    probs, labels = _calibrated(40_000, 5, seed=11)
    assert 0.0 <= fn(probs, labels) < 0.01
    sharp, labels = _calibrated(40_000, 5, seed=11, temperature=0.3)
    assert fn(sharp, labels) > 0.05
    assert fn(sharp, labels) <= 1.0


def test_new_eces_agree_with_their_definitions_on_random_cases():
    for _, probs, labels in _random_cases():
        probs = probs.double()
        # a class permutation does not change classwise ECE; adaptive ECE with one bin is |acc - mean conf|
        perm = torch.randperm(probs.shape[1], generator=torch.Generator().manual_seed(0))
        inverse = torch.argsort(perm)
        assert metrics.classwise_ece(probs[:, perm], inverse[labels]) == pytest.approx(
            metrics.classwise_ece(probs, labels), abs=1e-12)
        conf, pred = probs.max(1)
        assert metrics.adaptive_ece(probs, labels, n_bins=1) == pytest.approx(
            abs(float((pred == labels).double().mean()) - float(conf.mean())), abs=1e-12)
        # with N bins every sample is alone: the mean |correct - confidence|
        assert metrics.adaptive_ece(probs, labels, n_bins=len(labels)) == pytest.approx(
            float(((pred == labels).double() - conf).abs().mean()), abs=1e-12)


@pytest.mark.parametrize("fn", [metrics.adaptive_ece, metrics.classwise_ece])
def test_new_eces_refuse_logits_and_bad_bins(fn):
    with pytest.raises(ReprolibError, match=f"{fn.__name__} expects probabilities.*softmax"):
        fn(torch.tensor([[2.0, 1.0, 0.2]]), torch.tensor([0]))
    with pytest.raises(ReprolibError, match="n_bins must be >= 1"):
        fn(torch.tensor([[0.5, 0.5]]), torch.tensor([0]), n_bins=0)
    with pytest.raises(ReprolibError, match="label 3"):
        fn(torch.tensor([[0.5, 0.5]]), torch.tensor([3]))
