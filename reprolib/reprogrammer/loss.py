"""Symmetric in-batch contrastive loss with focal loss in place of cross-entropy (docs/methods.md s.6).

focal(logits, T) = mean_i sum_j -alpha * T_ij * (1 - p_ij)^gamma * log p_ij, p = softmax over j,
with T a row-stochastic target matrix (one-hot rows give the usual focal loss; gamma = 0 and
alpha = 1 give cross-entropy). The public code adds 1e-7 to every one-hot entry; we do not.

Targets for a batch of images with one caption each ("a photo of a {class of image i}"):
- "diagonal" (what the public IBM/reprogrammer training loop does, and what we train with):
  image i's positive is caption i only, as in CLIP pre-training, although same-class captions in
  the batch are identical strings.
- "same_class": T_ij = 1/n_c for every j of image i's class (multi-positive, as in SupCon).
Because same-class captions are identical, their text features and hence their logit columns
(and rows, text->image) are identical, and the two choices give exactly the same loss and
gradients (tests/test_reprogrammer.py checks this): spreading a target evenly over equal columns
changes nothing, and averaging rows of equal captions does the spreading on the text side. So the
public code's diagonal targets are not a bug here; the only cost is that the image->text
probability of the right column is capped at 1/n_c, so the loss never reaches 0.
"""

from __future__ import annotations

import torch

from reprolib.errors import check_choice
from reprolib.reprogrammer.recipe import CONTRASTIVE_TARGETS


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.8, gamma: float = 4.0) -> torch.Tensor:
    """Mean over rows of sum_j -alpha T_ij (1 - p_ij)^gamma log p_ij; T (N, K) or class indices (N,)."""
    if targets.dim() == 1:
        targets = torch.nn.functional.one_hot(targets, logits.shape[1]).to(logits.dtype)
    log_p = logits.log_softmax(dim=1)
    weight = (1.0 - log_p.exp()).pow(gamma)
    return (-alpha * targets * weight * log_p).sum(dim=1).mean()


def contrastive_targets(labels: torch.Tensor, mode: str = "diagonal") -> torch.Tensor:
    """(B, B) row-stochastic targets for a batch whose caption j describes labels[j]."""
    check_choice("contrastive targets", mode, CONTRASTIVE_TARGETS)
    if mode == "diagonal":
        return torch.eye(len(labels), device=labels.device)
    same = (labels[:, None] == labels[None, :]).float()
    return same / same.sum(dim=1, keepdim=True)


def symmetric_focal_contrastive(image_features: torch.Tensor, text_features: torch.Tensor,
                                logit_scale: torch.Tensor | float, targets: torch.Tensor,
                                alpha: float = 0.8, gamma: float = 4.0) -> torch.Tensor:
    """(focal(s I T^T, targets) + focal(s T I^T, targets^T)) / 2 for unit-normalised features."""
    image_logits = logit_scale * image_features @ text_features.T
    text_logits = logit_scale * text_features @ image_features.T
    return 0.5 * (focal_loss(image_logits, targets, alpha, gamma) + focal_loss(text_logits, targets.T, alpha, gamma))
