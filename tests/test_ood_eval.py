"""OOD scoring of transfer runs: the right OOD images, and metrics that see separation."""

import torch

from reprolib.config import load_profile
from reprolib.transfer.ood_eval import MAX_PER_SET, detection, ood_images


def test_ood_images_pool_the_other_embedded_sets_at_the_target_size():
    images = ood_images("digits", load_profile("smoke"), size=8, channels=1)
    assert set(images) == {"datasets", "noise"}
    # Fashion-MNIST and glyphs (never digits itself), MAX_PER_SET each, resized to 8 px.
    assert images["datasets"].shape == (2 * MAX_PER_SET, 1, 8, 8)
    assert images["noise"].shape == (MAX_PER_SET, 1, 8, 8)
    for x in images.values():
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    again = ood_images("digits", load_profile("smoke"), size=8, channels=1)
    assert torch.equal(again["datasets"], images["datasets"])


def test_detection_sees_confident_id_and_flat_ood():
    id_logits = torch.zeros(50, 10)
    id_logits[:, 3] = 8.0                       # confident: high msp and energy
    ood_logits = torch.randn(40, 10, generator=torch.Generator().manual_seed(0)) * 0.1
    out = detection(id_logits, ood_logits)
    assert out["msp_auroc"] == 1.0 and out["energy_auroc"] == 1.0
    assert out["msp_fpr95"] == 0.0
    swapped = detection(ood_logits, id_logits)
    assert swapped["msp_auroc"] == 0.0 and swapped["msp_fpr95"] == 1.0
