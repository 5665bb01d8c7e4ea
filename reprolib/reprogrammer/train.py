"""Training loops: the Reprogrammer and its two trained baselines (linear probe, fine-tuning;
recipe.baselines picks the public RPR variant or reprolib_v1, see recipe.py).

All loops are seeded (a CPU torch.Generator drives shuffling and W's init), so the same seed gives
the same numbers on the CPU. Images are [0, 1] tensors at their native size; resizing
(reprolib.images.to_network) and normalisation happen inside the encoder (image_features).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from reprolib.batching import minibatches, predict
from reprolib.reprogrammer.encoders import TextImageEncoder
from reprolib.reprogrammer.loss import contrastive_targets, symmetric_focal_contrastive
from reprolib.reprogrammer.recipe import ReprogrammerRecipe
from reprolib.reprogrammer.reprogram import Reprogrammer
from reprolib.schedules import step_decay, warmup_cosine


def warmup_steps(recipe: ReprogrammerRecipe, total: int) -> int:
    """The paper's 500 steps, capped at warmup_max_fraction of all steps for short runs."""
    return min(recipe.warmup_steps, max(1, round(recipe.warmup_max_fraction * total)))


def train_reprogrammer(encoder: TextImageEncoder, images: torch.Tensor, labels: torch.Tensor,
                       class_names: list[str], recipe: ReprogrammerRecipe, seed: int = 1,
                       device: str = "cpu") -> tuple[Reprogrammer, list[float]]:
    """Train W (Adam) and the text embeddings (AdamW) with the symmetric focal contrastive loss.

    Each image's caption is its class caption, targets are diagonal as in the public code (see
    loss.py). The K class captions are encoded once per step and indexed by label, which gives the
    same features and gradients as encoding the batch's B captions one by one.
    Returns the model and the mean training loss of each epoch.
    """
    torch.manual_seed(seed)
    model = Reprogrammer(encoder.to(device), class_names, recipe.frame, recipe.template, seed).to(device)
    params = model.trainable_parameters()
    opt_image = torch.optim.Adam(params["image"], lr=recipe.lr_image, weight_decay=recipe.wd_image)
    opt_text = torch.optim.AdamW(params["text"], lr=recipe.lr_text, betas=tuple(recipe.betas_text),
                                 eps=recipe.eps_text, weight_decay=recipe.wd_text)
    steps_per_epoch = math.ceil(len(images) / recipe.batch_size)
    total = recipe.epochs * steps_per_epoch
    warmup = warmup_steps(recipe, total)
    generator = torch.Generator().manual_seed(seed)
    losses, step = [], 0
    model.train()
    for _ in range(recipe.epochs):
        epoch_loss = 0.0
        for idx in minibatches(len(images), recipe.batch_size, generator):
            for opt, lr in ((opt_image, recipe.lr_image), (opt_text, recipe.lr_text)):
                for group in opt.param_groups:
                    group["lr"] = warmup_cosine(lr, step, total, warmup)
            x, y = images[idx].to(device), labels[idx].to(device)
            image_features = model.image_features(x)
            text_features = model.text_features()[y]
            targets = contrastive_targets(y, "diagonal")
            loss = symmetric_focal_contrastive(image_features, text_features, model.encoder.logit_scale.detach(),
                                               targets, recipe.focal_alpha, recipe.focal_gamma)
            opt_image.zero_grad(set_to_none=True)
            opt_text.zero_grad(set_to_none=True)
            loss.backward()
            opt_image.step()
            opt_text.step()
            epoch_loss += float(loss.detach()) * len(idx)
            step += 1
        losses.append(epoch_loss / len(images))
    return model.eval(), losses


@torch.no_grad()
def zero_shot_features(encoder: TextImageEncoder, images: torch.Tensor, batch_size: int = 512,
                       device: str = "cpu") -> torch.Tensor:
    """Unit-normalised image features of the plain resized images (frozen encoder), on the CPU."""
    return predict(encoder.eval().image_features, images, batch_size, device)


@torch.no_grad()
def class_text_features(encoder: TextImageEncoder, class_names: list[str], template: str,
                        device: str = "cpu") -> torch.Tensor:
    ids = encoder.tokenize([template.format(c) for c in class_names]).to(device)
    return F.normalize(encoder.eval().encode_text(ids), dim=-1).cpu()


def train_linear_probe(features: torch.Tensor, labels: torch.Tensor, num_classes: int,
                       recipe: ReprogrammerRecipe, seed: int = 1) -> nn.Linear:
    """Linear(D, K) on frozen unit-normalised features: Adam, lr recipe.lp_lr, no weight decay,
    lp_epochs; the lr follows `baseline_lr` (public: the step schedule; reprolib_v1: constant).
    docs/methods.md s.6 baselines."""
    torch.manual_seed(seed)
    head = nn.Linear(features.shape[1], num_classes)
    opt = torch.optim.Adam(head.parameters(), lr=recipe.lp_lr)
    total = recipe.lp_epochs * math.ceil(len(features) / recipe.batch_size)
    generator, step = torch.Generator().manual_seed(seed), 0
    for _ in range(recipe.lp_epochs):
        for idx in minibatches(len(features), recipe.batch_size, generator):
            for group in opt.param_groups:
                group["lr"] = baseline_lr(recipe, recipe.lp_lr, step, total)
            loss = F.cross_entropy(head(features[idx]), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    return head.eval()


def baseline_lr(recipe: ReprogrammerRecipe, base_lr: float, step: int, total: int) -> float:
    """The linear probe's lr at `step` of `total`: the public step schedule, or (reprolib_v1) constant."""
    if recipe.baselines == "public":
        return step_decay(base_lr, step, total, recipe.step_milestones, recipe.step_factors)
    return base_lr


class CosineHead(nn.Module):
    """Fixed class text features as a classifier: scale x cosine logits (reprolib_v1's head)."""

    def __init__(self, text_features: torch.Tensor, scale: float):
        super().__init__()
        self.register_buffer("text", text_features.clone())
        self.scale = scale

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.scale * features @ self.text.T


def zero_shot_head(text_features: torch.Tensor, scale: float) -> nn.Linear:
    """The public fine-tuning head: a trainable Linear(D, K), weight = scale x the unit-normalised
    class text features, bias 0. Its inputs are unit-normalised image features, so at the start
    it gives scale x cosine logits, the zero-shot classifier."""
    head = nn.Linear(text_features.shape[1], text_features.shape[0])
    with torch.no_grad():
        head.weight.copy_(scale * text_features)
        head.bias.zero_()
    return head


class FineTuned(nn.Module):
    """A trained copy of the image encoder and a classification head on its unit-normalised
    features (public: the trainable zero_shot_head; reprolib_v1: the fixed CosineHead); the text
    tower is not used. Calling it gives the K class logits."""

    def __init__(self, encoder: TextImageEncoder, head: nn.Module):
        super().__init__()
        self.encoder = copy.deepcopy(encoder)
        self.head = head

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder.image_features(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.image_features(images))


def train_finetune(encoder: TextImageEncoder, images: torch.Tensor, labels: torch.Tensor,
                   text_features: torch.Tensor, recipe: ReprogrammerRecipe, seed: int = 1,
                   device: str = "cpu") -> FineTuned:
    """AdamW (betas 0.9/0.98, eps 1e-6, wd 0.1, lr recipe.finetune_lr), CE on the model's logits,
    finetune_epochs. public: every image-tower parameter and the zero_shot_head (finetune_head_scale)
    train under the step schedule. reprolib_v1: the image tower trains under warm-up + cosine
    against the fixed text features at the encoder's logit scale, scored at logit_scale_eval."""
    torch.manual_seed(seed)
    public = recipe.baselines == "public"
    head = (zero_shot_head(text_features, recipe.finetune_head_scale) if public
            else CosineHead(text_features, float(encoder.logit_scale.detach())))
    model = FineTuned(encoder, head).to(device)
    params = [p for name, p in model.encoder.named_parameters() if _is_image_param(name)]
    params += list(model.head.parameters())            # empty for the fixed CosineHead
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=recipe.finetune_lr, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.1)
    total = recipe.finetune_epochs * math.ceil(len(images) / recipe.batch_size)
    warmup = warmup_steps(recipe, total)
    generator, step = torch.Generator().manual_seed(seed), 0
    model.train()
    for _ in range(recipe.finetune_epochs):
        for idx in minibatches(len(images), recipe.batch_size, generator):
            for group in opt.param_groups:
                group["lr"] = (step_decay(recipe.finetune_lr, step, total, recipe.step_milestones, recipe.step_factors)
                               if public else warmup_cosine(recipe.finetune_lr, step, total, warmup))
            x, y = images[idx].to(device), labels[idx].to(device)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    if not public:
        model.head.scale = recipe.logit_scale_eval     # v1 scored every encoder method on 100 x cosine
    return model.eval()


def _is_image_param(name: str) -> bool:
    # TinyDualEncoder keeps its image tower under "visual."; open_clip under "model.visual."
    return name.startswith("visual.") or name.startswith("model.visual.")
