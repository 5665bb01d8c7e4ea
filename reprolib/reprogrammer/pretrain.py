"""The embedded CLIP stand-in: a TinyDualEncoder trained contrastively on Fashion-MNIST captions.

Each training image's caption is "a photo of a {its class name}". The loss is CLIP's symmetric
in-batch cross-entropy with a learned logit scale, but with multi-positive targets (same-class
captions are identical, so every same-class pair is a positive; loss.py "same_class", which gives
the same loss as diagonal targets here, see loss.py). The vocabulary covers the template words and
the class names of the sets in VOCABULARY_SETS (fashion_mnist, digits, glyphs; named here, not read
from the dataset registry, so that registering another dataset neither changes the vocabulary nor
retrains the encoder), so the digits and glyphs words exist but are untrained
(random) embeddings: zero-shot on them is near chance, which is what reprogramming must fix.
Note: the glyph class "A" and the article "a" share one word-level token, as in CLIP's
lower-casing tokenizer.

The trained encoder is cached at <artifacts>/reprogrammer/encoder.pth (written atomically); a
cache whose settings differ from the recipe's is retrained and replaced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from reprolib import paths
from reprolib.batching import minibatches
from reprolib.data import get_dataset, info
from reprolib.models.weights import load_weights
from reprolib.records import atomic_torch_save
from reprolib.reprogrammer.encoders import TinyDualEncoder, build_vocabulary
from reprolib.reprogrammer.loss import contrastive_targets, symmetric_focal_contrastive
from reprolib.reprogrammer.recipe import ReprogrammerRecipe
from reprolib.reprogrammer.train import class_text_features, zero_shot_features

SOURCE = "fashion_mnist"
# The sets whose class names the stand-in encoder knows: its source and the embedded study's
# targets. A target outside it would be reprogrammed to words the encoder has no token for.
VOCABULARY_SETS = (SOURCE, "digits", "glyphs")
ENCODER_VERSION = 2   # bump when TinyDualEncoder or its training changes: old caches are retrained


def embedded_vocabulary(template: str) -> list[str]:
    """The stand-in encoder's words: the template's and the class names of VOCABULARY_SETS."""
    captions = [template.format(c) for name in VOCABULARY_SETS for c in info(name).class_names]
    return build_vocabulary(captions)


def encoder_settings(recipe: ReprogrammerRecipe, seed: int) -> dict[str, Any]:
    """What the cached encoder depends on (a different value retrains it)."""
    return {"version": ENCODER_VERSION, "source": SOURCE, "template": recipe.template, "epochs": recipe.encoder_epochs,
            "train_size": recipe.encoder_train_size, "lr": recipe.encoder_lr,
            "batch_size": recipe.encoder_batch_size, "seed": seed}


def train_tiny_encoder(images: torch.Tensor, labels: torch.Tensor, class_names: list[str],
                       vocabulary: list[str], recipe: ReprogrammerRecipe, seed: int = 1) -> TinyDualEncoder:
    """Contrastive training of all encoder parameters (Adam, cosine decay, seeded)."""
    torch.manual_seed(seed)
    encoder = TinyDualEncoder(vocabulary)
    caption_ids = encoder.tokenize([recipe.template.format(c) for c in class_names])
    opt = torch.optim.Adam(encoder.parameters(), lr=recipe.encoder_lr)
    steps_per_epoch = -(-len(images) // recipe.encoder_batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=recipe.encoder_epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(seed)
    encoder.train()
    for _ in range(recipe.encoder_epochs):
        for idx in minibatches(len(images), recipe.encoder_batch_size, generator):
            x, y = images[idx], labels[idx]
            image_features = F.normalize(encoder.encode_image(encoder.normalize(x)), dim=-1)
            text_features = F.normalize(encoder.encode_text(caption_ids), dim=-1)[y]   # K captions, indexed
            loss = symmetric_focal_contrastive(image_features, text_features, encoder.logit_scale,
                                               contrastive_targets(y, "same_class"), alpha=1.0, gamma=0.0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return encoder.eval()


@torch.no_grad()
def zero_shot_accuracy(encoder: TinyDualEncoder, images: torch.Tensor, labels: torch.Tensor,
                       class_names: list[str], template: str) -> float:
    logits = zero_shot_features(encoder, images) @ class_text_features(encoder, class_names, template).T
    return float((logits.argmax(dim=1) == labels).float().mean())


def get_embedded_encoder(artifacts: Path, recipe: ReprogrammerRecipe, seed: int = 1,
                         data_root: Path | None = None) -> tuple[TinyDualEncoder, dict[str, Any]]:
    """The cached stand-in encoder (trained on first use) and its info: settings, zero-shot accuracy."""
    path = paths.encoder_file(artifacts)
    settings = encoder_settings(recipe, seed)
    vocabulary = embedded_vocabulary(recipe.template)
    if path.is_file():
        saved = load_weights(path, "delete it and it is trained again")   # tensors, dicts, lists, str only
        if saved.get("settings") == settings and saved.get("vocabulary") == vocabulary:
            encoder = TinyDualEncoder(vocabulary, **saved["config"])
            encoder.load_state_dict(saved["state_dict"])
            return encoder.eval(), saved["info"]
    train = get_dataset(SOURCE, "train", root=data_root)
    test = get_dataset(SOURCE, "test", root=data_root)
    class_names = list(train.info.class_names)
    x, y = train.tensors()
    pick = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[: recipe.encoder_train_size]
    encoder = train_tiny_encoder(x[pick], y[pick], class_names, vocabulary, recipe, seed)
    x_test, y_test = test.tensors()
    accuracy = zero_shot_accuracy(encoder, x_test, y_test, class_names, recipe.template)
    info = {"settings": settings, "zero_shot_accuracy_fashion_mnist_test": accuracy,
            "note": "small dual encoder trained here; stands in for CLIP in the embedded profile"}
    atomic_torch_save({"settings": settings, "vocabulary": vocabulary, "config": encoder.config,
                  "state_dict": encoder.state_dict(), "info": info}, path)
    return encoder, info
