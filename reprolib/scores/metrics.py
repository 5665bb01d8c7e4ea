"""Calibration and OOD-detection metrics (docs/methods.md s.9): torch tensors in, Python numbers out.

Calibration follows Guo et al. 2017: top-label confidence and correctness, `n_bins`
equal-width bins on (0, 1] (a confidence c goes to bin ceil(c * n_bins) - 1, so c = 1.0 is
in the last bin), pooled over the whole test set. All arithmetic is float64.

`adaptive_ece` (equal-mass bins) and `classwise_ece` (Kull et al. 2019, every class's
probability) follow the same conventions; both are registered metrics (reprolib.scores.registry).

Differences from torchmetrics' `MulticlassCalibrationError` (notebooks.md): its bins are
[lo, hi) and a confidence of exactly 1.0 falls into an extra (n_bins + 1)-th bin, so the two
disagree only for confidences lying exactly on a bin edge, most visibly saturated 1.0.

`legacy_rlt_ece` reproduces the number the public RLT code logged; it is not a calibration
measure and exists only so a notebook can explain old logs.
"""

from __future__ import annotations

import math

import torch

from reprolib.errors import ReprolibError, check_type

PROB_TOLERANCE = 1e-4   # how far a row may sum from 1 (float32 softmax rows are within ~1e-6)
NLL_FLOOR = 1e-12       # probabilities are clamped here before the log when only probs are given


# ----------------------------------------------------------------------------- input checks

def _check_labels(labels: torch.Tensor, n: int, num_classes: int, fn: str) -> torch.Tensor:
    check_type(f"{fn} labels", labels, torch.Tensor)
    if labels.dim() != 1 or labels.shape[0] != n:
        raise ReprolibError(f"{fn} expects labels of shape ({n},), got {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise ReprolibError(f"{fn} expects integer class labels, got dtype {labels.dtype}")
    labels = labels.detach().cpu().long()
    if n and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        bad = int(labels.min()) if int(labels.min()) < 0 else int(labels.max())
        raise ReprolibError(f"{fn} got label {bad}; labels must lie in 0..{num_classes - 1}")
    return labels


def _check_scores(scores: torch.Tensor, name: str, fn: str) -> torch.Tensor:
    """A (N, K) finite float tensor with N >= 1 and K >= 1, returned as float64 on the CPU."""
    check_type(f"{fn} {name}", scores, torch.Tensor)
    if scores.dim() != 2 or scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ReprolibError(f"{fn} expects {name} of shape (N, K) with N, K >= 1, got {tuple(scores.shape)}")
    if not scores.dtype.is_floating_point:
        raise ReprolibError(f"{fn} expects floating-point {name}, got dtype {scores.dtype}")
    scores = scores.detach().cpu().double()
    if not torch.isfinite(scores).all():
        raise ReprolibError(f"{fn} got non-finite {name} (NaN or inf)")
    return scores


def _check_probs(probs: torch.Tensor, labels: torch.Tensor, fn: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Refuse anything that is not a batch of probability rows (RLT fed raw logits here)."""
    p = _check_scores(probs, "probs", fn)
    y = _check_labels(labels, p.shape[0], p.shape[1], fn)
    row_sums = p.sum(dim=1)
    worst = int((row_sums - 1.0).abs().argmax())
    if float(p.min()) < -PROB_TOLERANCE or abs(float(row_sums[worst]) - 1.0) > PROB_TOLERANCE:
        detail = (f"a negative entry {float(p.min()):.4g}" if float(p.min()) < -PROB_TOLERANCE
                  else f"rows summing to {float(row_sums[worst]):.4g}")
        raise ReprolibError(f"{fn} expects probabilities (rows >= 0 summing to 1); got {detail} "
                            "— apply softmax to logits first")
    return p.clamp_min(0.0), y


def _check_n_bins(n_bins: int, fn: str) -> int:
    check_type(f"{fn} n_bins", n_bins, int)
    if n_bins < 1:
        raise ReprolibError(f"{fn} n_bins must be >= 1, got {n_bins}")
    return n_bins


# ----------------------------------------------------------------------------- calibration

def _top_label(p: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    confidence, prediction = p.max(dim=1)   # ties: torch returns the first maximal class
    return confidence, (prediction == y).double()


def _binned(confidence: torch.Tensor, correct: torch.Tensor, bin_index: torch.Tensor,
            n_bins: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-bin (counts, mean confidence, accuracy); empty bins get 0.0 means."""
    counts = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, bin_index, torch.ones_like(confidence))
    conf_sum = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, bin_index, confidence)
    hit_sum = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, bin_index, correct)
    safe = counts.clamp_min(1.0)
    return counts, conf_sum / safe, hit_sum / safe


def _guo_bins(p: torch.Tensor, y: torch.Tensor, n_bins: int):
    confidence, correct = _top_label(p, y)
    # Bin b holds (b/n, (b+1)/n]; c = 0 cannot occur for a top-label probability, clamp anyway.
    bin_index = (torch.ceil(confidence * n_bins).long() - 1).clamp(0, n_bins - 1)
    return _binned(confidence, correct, bin_index, n_bins)


def reliability_bins(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> dict[str, list]:
    """Reliability-diagram data: per-bin counts, mean confidence, accuracy, and the n_bins + 1 edges.

    Empty bins report confidence = accuracy = 0.0 (no NaN, so the dict is valid JSON); use
    `counts` to skip them when plotting.
    """
    n_bins = _check_n_bins(n_bins, "reliability_bins")
    counts, confidence, accuracy = _guo_bins(*_check_probs(probs, labels, "reliability_bins"), n_bins)
    return {"counts": [int(c) for c in counts.tolist()],
            "confidence": confidence.tolist(),
            "accuracy": accuracy.tolist(),
            "edges": [b / n_bins for b in range(n_bins + 1)]}


def ece(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """Expected calibration error (Guo et al.): sum_b (n_b / N) |accuracy_b - confidence_b|."""
    n_bins = _check_n_bins(n_bins, "ece")
    counts, confidence, accuracy = _guo_bins(*_check_probs(probs, labels, "ece"), n_bins)
    return float((counts / counts.sum() * (accuracy - confidence).abs()).sum())


def mce(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """Maximum calibration error: the largest |accuracy_b - confidence_b| over non-empty bins."""
    n_bins = _check_n_bins(n_bins, "mce")
    counts, confidence, accuracy = _guo_bins(*_check_probs(probs, labels, "mce"), n_bins)
    return float((accuracy - confidence).abs()[counts > 0].max())


def nll(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean negative log-likelihood -log p_y; p_y is clamped at 1e-12 (caps one sample at ~27.6).

    `calibration_summary` computes NLL from log-softmax of the logits instead, with no cap.
    """
    p, y = _check_probs(probs, labels, "nll")
    return float(-p.gather(1, y[:, None]).clamp_min(NLL_FLOOR).log().mean())


def brier(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Multiclass Brier score: mean over samples of sum_k (p_k - onehot_k)^2 (range 0..2)."""
    p, y = _check_probs(probs, labels, "brier")
    onehot = torch.nn.functional.one_hot(y, p.shape[1]).double()
    return float(((p - onehot) ** 2).sum(dim=1).mean())


def adaptive_ece(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """Adaptive (equal-mass) ECE: sum_b (n_b / N) |accuracy_b - confidence_b| over `n_bins` bins
    of (nearly) equal counts of the sorted top-label confidence (docs/methods.md s.9).

    The N samples are sorted by confidence with a stable sort (ties keep their sample order), and
    bin b takes the sorted positions floor(b N / n_bins) .. floor((b + 1) N / n_bins) - 1: when
    n_bins does not divide N the bins hold floor(N / n_bins) or one more sample, the larger ones
    spread evenly; with N < n_bins some bins are empty and count nothing. Tied confidences may
    therefore fall into two neighbouring bins; the value is fixed by the input order.
    """
    n_bins = _check_n_bins(n_bins, "adaptive_ece")
    confidence, correct = _top_label(*_check_probs(probs, labels, "adaptive_ece"))
    order = torch.sort(confidence, stable=True).indices
    n = confidence.shape[0]
    sizes = torch.tensor([(b + 1) * n // n_bins - b * n // n_bins for b in range(n_bins)])
    bin_index = torch.repeat_interleave(torch.arange(n_bins), sizes)
    counts, mean_conf, accuracy = _binned(confidence[order], correct[order], bin_index, n_bins)
    return float((counts / n * (accuracy - mean_conf).abs()).sum())


def classwise_ece(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """Classwise ECE (Kull et al. 2019): for each class k, the ECE of p_k against [y == k] over ALL
    samples in `n_bins` equal-width bins, then the mean over the K classes (docs/methods.md s.9).

    Bins are those of `ece` (bin b holds (b/n, (b+1)/n], with p_k = 0 in the first bin); class k's
    term is sum_b (n_kb / N) |mean p_k in b - share of b's samples labelled k|.
    """
    n_bins = _check_n_bins(n_bins, "classwise_ece")
    p, y = _check_probs(probs, labels, "classwise_ece")
    n, k = p.shape
    bins = (torch.ceil(p * n_bins).long() - 1).clamp(0, n_bins - 1) + n_bins * torch.arange(k)   # (N, K)
    onehot = torch.nn.functional.one_hot(y, k).double()
    counts, mean_p, frequency = _binned(p.reshape(-1), onehot.reshape(-1), bins.reshape(-1), n_bins * k)
    per_class = (counts / n * (frequency - mean_p).abs()).reshape(k, n_bins).sum(dim=1)
    return float(per_class.mean())


def checked_logits(logits: torch.Tensor, labels: torch.Tensor, fn: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(float64 CPU logits (N, K), int64 labels (N,)) after the checks every metric makes."""
    z = _check_scores(logits, "logits", fn)
    return z, _check_labels(labels, z.shape[0], z.shape[1], fn)


def calibration_summary(logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15,
                        legacy_batch_size: int | None = None) -> dict:
    """All calibration metrics of one evaluation, from the model's K target LOGITS (N, K).

    Softmax is taken in float64. Returns {"accuracy", "ece", "mce", "nll", "brier",
    "reliability": {counts, confidence, accuracy, edges}} and, when `legacy_batch_size` is
    given, "legacy_rlt_ece" (see `legacy_rlt_ece`; not a calibration measure).
    """
    z, y = checked_logits(logits, labels, "calibration_summary")
    log_p = torch.log_softmax(z, dim=1)
    p = log_p.exp()
    summary = {
        "accuracy": float((p.argmax(dim=1) == y).double().mean()),
        "ece": ece(p, y, n_bins),
        "mce": mce(p, y, n_bins),
        "nll": float(-log_p.gather(1, y[:, None]).mean()),
        "brier": brier(p, y),
        "reliability": reliability_bins(p, y, n_bins),
    }
    if legacy_batch_size is not None:
        summary["legacy_rlt_ece"] = legacy_rlt_ece(z, y, legacy_batch_size, n_bins)
    return summary


# ----------------------------------------------------------------------------- legacy RLT value

def legacy_rlt_ece(logits: torch.Tensor, labels: torch.Tensor, batch_size: int, n_bins: int = 15) -> float:
    """The "ECE" the public RLT code logged. NOT a calibration measure: kept only to explain old logs.

    What that code did (docs/methods.md s.9): for each test batch (consecutive `batch_size` samples,
    the last one possibly smaller) it passed the RAW logits to a 15-bin top-label ECE, so the
    "confidence" is the largest raw logit and correctness is argmax == label. That ECE's bins are
    the edges b/n_bins, b = 1..n_bins, searched from the left: a value v lands in the first bin
    whose upper edge is >= v, so v <= 1/n_bins (negative logits included) is in the first bin and
    v > 1 (most logits) is in the last bin, where its raw value enters the bin mean. The per-batch
    values were summed and divided by the number of test SAMPLES (not batches). The result
    therefore grows with the logit magnitude and shrinks like 1 / batch_size.
    """
    z = _check_scores(logits, "logits", "legacy_rlt_ece")
    y = _check_labels(labels, z.shape[0], z.shape[1], "legacy_rlt_ece")
    check_type("legacy_rlt_ece batch_size", batch_size, int)
    if batch_size < 1:
        raise ReprolibError(f"legacy_rlt_ece batch_size must be >= 1, got {batch_size}")
    n_bins = _check_n_bins(n_bins, "legacy_rlt_ece")
    upper_edges = torch.tensor([b / n_bins for b in range(1, n_bins + 1)], dtype=torch.float64)
    total = 0.0
    for start in range(0, z.shape[0], batch_size):
        confidence, correct = _top_label(z[start:start + batch_size], y[start:start + batch_size])
        bin_index = torch.searchsorted(upper_edges, confidence, right=False).clamp_max(n_bins - 1)
        counts, mean_conf, accuracy = _binned(confidence, correct, bin_index, n_bins)
        total += float((counts / counts.sum() * (mean_conf - accuracy).abs()).sum())
    return total / z.shape[0]


# ----------------------------------------------------------------------------- OOD detection

def _check_1d(scores: torch.Tensor, name: str, fn: str) -> torch.Tensor:
    check_type(f"{fn} {name}", scores, torch.Tensor)
    if scores.dim() != 1 or scores.numel() == 0:
        raise ReprolibError(f"{fn} expects non-empty 1-D {name}, got shape {tuple(scores.shape)}")
    scores = scores.detach().cpu().double()
    if not torch.isfinite(scores).all():
        raise ReprolibError(f"{fn} got non-finite {name} (NaN or inf)")
    return scores


def ood_auroc(id_scores: torch.Tensor, ood_scores: torch.Tensor) -> float:
    """Area under the ROC curve with ID as the positive class (higher score = more in-distribution).

    Equals P(s_id > s_ood) + 0.5 P(s_id = s_ood) over all ID/OOD pairs (Mann-Whitney), which is
    what sklearn's roc_auc_score gives with ties.
    """
    s_id = torch.sort(_check_1d(id_scores, "id_scores", "ood_auroc")).values
    s_ood = _check_1d(ood_scores, "ood_scores", "ood_auroc")
    below_or_equal = torch.searchsorted(s_id, s_ood, right=True)   # ID scores <= each OOD score
    below = torch.searchsorted(s_id, s_ood, right=False)           # ID scores < each OOD score
    greater = s_id.numel() - below_or_equal
    ties = below_or_equal - below
    pairs = s_id.numel() * s_ood.numel()
    return float((greater.double().sum() + 0.5 * ties.double().sum()) / pairs)


def fpr_at_95_tpr(id_scores: torch.Tensor, ood_scores: torch.Tensor) -> float:
    """Fraction of OOD samples accepted as ID at the threshold that keeps 95% of ID samples.

    Convention: sort ID scores in descending order and take the threshold t = the k-th largest
    with k = ceil(0.95 * n_id); a sample is accepted as ID when its score is >= t. So at least
    95% of ID samples are accepted (more when ID scores tie at t), and OOD samples scoring
    exactly t count as false positives. Deterministic under ties; no interpolation.
    """
    s_id = _check_1d(id_scores, "id_scores", "fpr_at_95_tpr")
    s_ood = _check_1d(ood_scores, "ood_scores", "fpr_at_95_tpr")
    k = math.ceil(round(0.95 * s_id.numel(), 9))   # round first: 0.95 * n may be 1 ulp over an integer
    threshold = torch.sort(s_id, descending=True).values[k - 1]
    return float((s_ood >= threshold).double().mean())
