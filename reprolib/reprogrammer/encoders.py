"""Text-image encoders behind one interface: the embedded CLIP stand-in and an open_clip adapter.

`TextImageEncoder` is what the Reprogrammer needs from CLIP: `encode_image(x_normalised)`,
`encode_text(token_ids)`, `tokenize(captions)`, `.logit_scale` (the exp'd scale, a tensor),
`image_features(images_01)` (resize + normalise + encode + unit-normalise),
`.image_size`, `.channels`, `.mean` / `.std` with `normalize(x)`, and the two tables the text
side of the Reprogrammer trains: `.token_embedding` (nn.Embedding) and `.positional_embedding`
(nn.Parameter, context_length x width).

- `TinyDualEncoder` STANDS IN FOR CLIP in the offline embedded profile: no CLIP weights can be
  had offline, so a small dual encoder (a 3-block CNN on 1 x 28 x 28 images; a 2-layer causal
  transformer over a word-level vocabulary) is trained contrastively on Fashion-MNIST captions
  (`reprolib.reprogrammer.pretrain`). It is not CLIP and its numbers are not CLIP's.
- `OpenClipEncoder` wraps an open_clip `CLIP` (paper profile: ViT-B-32, OpenAI weights, which
  open_clip downloads; `build_open_clip`). `tiny_open_clip_config()` gives a randomly initialised
  small open_clip model that builds offline, for tests.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import nn

from reprolib.errors import ReprolibError
from reprolib.images import to_network

SPECIAL_TOKENS = ("<pad>", "<sos>", "<eos>")
PAD, SOS, EOS = 0, 1, 2


class TextImageEncoder(nn.Module):
    """The CLIP-like interface the Reprogrammer trains through (see the module docstring)."""

    image_size: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    token_embedding: nn.Embedding
    positional_embedding: nn.Parameter

    def encode_image(self, x_normalised: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode_text(self, token_ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def tokenize(self, captions: list[str]) -> torch.Tensor:
        raise NotImplementedError

    @property
    def logit_scale(self) -> torch.Tensor:
        raise NotImplementedError

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder normalisation of a [0, 1] batch at the encoder's size and channels."""
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        return (x - mean) / std

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-normalised features of [0, 1] images of any size and 1 or 3 channels, brought to
        the encoder's input by reprolib.images.to_network (the transfer study's image path)."""
        x = to_network(images, self.channels, self.image_size)
        return F.normalize(self.encode_image(self.normalize(x)), dim=-1)


# ----------------------------------------------------------------------------- embedded stand-in

def caption_words(caption: str) -> list[str]:
    """Word-level tokens: lower case, split on whitespace ("t-shirt/top" stays one word)."""
    return caption.lower().split()


def build_vocabulary(captions: list[str]) -> list[str]:
    """Special tokens, then every word of the captions once, sorted (so the order is stable)."""
    words = sorted({w for c in captions for w in caption_words(c)})
    return list(SPECIAL_TOKENS) + words


class TinyDualEncoder(TextImageEncoder):
    """A small CLIP-style dual encoder; in the embedded profile it STANDS IN FOR CLIP.

    Image tower: 3 x (3x3 conv, BN, ReLU) with widths 16/32/64, 2x2 max-pools after the first two,
    global average pool, linear projection. Text tower: token + positional embeddings, 2 pre-norm
    transformer layers with a causal mask (as CLIP), final LayerNorm, the <eos> position's
    feature, linear projection. Logit scale initialised to 1/0.07 and capped at 100, as CLIP.
    """

    def __init__(self, vocabulary: list[str], embed_dim: int = 64, width: int = 64, layers: int = 2,
                 heads: int = 4, context_length: int = 12, image_size: int = 28,
                 mean: float = 0.2860, std: float = 0.3530):
        """The architecture, saved as `config` in the encoder cache.

        Many parameters because each is one architecture number, passed back by keyword when
        the cache is loaded (pretrain.py).
        """
        super().__init__()
        if list(vocabulary[:3]) != list(SPECIAL_TOKENS):
            raise ReprolibError(f"vocabulary must start with {SPECIAL_TOKENS}, got {vocabulary[:3]}")
        self.vocabulary = list(vocabulary)
        self.word_index = {w: i for i, w in enumerate(self.vocabulary)}
        self.image_size, self.channels = image_size, 1
        self.mean, self.std = (mean,), (std,)
        self.context_length = context_length
        self.config = dict(embed_dim=embed_dim, width=width, layers=layers, heads=heads,
                           context_length=context_length, image_size=image_size, mean=mean, std=std)
        blocks, in_ch = [], 1
        for i, out_ch in enumerate((16, 32, 64)):
            blocks += [nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU()]
            if i < 2:
                blocks.append(nn.MaxPool2d(2))
            in_ch = out_ch
        self.visual = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_ch, embed_dim))
        # CLIP's initialisation (std 0.02 / 0.01): the paper's text learning rate 5e-4 is sized for
        # tables at this scale; PyTorch's default N(0, 1) table would barely move in a short run.
        self.token_embedding = nn.Embedding(len(self.vocabulary), width)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        self.positional_embedding = nn.Parameter(0.01 * torch.randn(context_length, width))
        layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=2 * width, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Linear(width, embed_dim, bias=False)
        self.log_logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        causal = torch.full((context_length, context_length), float("-inf")).triu(1)
        self.register_buffer("causal_mask", causal, persistent=False)

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.log_logit_scale.exp().clamp(max=100.0)

    def tokenize(self, captions: list[str]) -> torch.Tensor:
        ids = torch.full((len(captions), self.context_length), PAD, dtype=torch.long)
        for row, caption in enumerate(captions):
            words = caption_words(caption)
            unknown = [w for w in words if w not in self.word_index]
            if unknown:
                raise ReprolibError(f"word {unknown[0]!r} of caption {caption!r} is not in the embedded "
                                    f"encoder's vocabulary ({len(self.vocabulary) - 3} words from the embedded "
                                    "datasets' class names); valid choices: the embedded datasets' classes")
            if len(words) + 2 > self.context_length:
                raise ReprolibError(f"caption {caption!r} has {len(words)} words; at most "
                                    f"{self.context_length - 2} fit the context")
            tokens = [SOS] + [self.word_index[w] for w in words] + [EOS]
            ids[row, : len(tokens)] = torch.tensor(tokens)
        return ids

    def encode_image(self, x_normalised: torch.Tensor) -> torch.Tensor:
        return self.visual(x_normalised)

    def encode_text(self, token_ids: torch.Tensor) -> torch.Tensor:
        x = self.token_embedding(token_ids) + self.positional_embedding[: token_ids.shape[1]]
        x = self.transformer(x, mask=self.causal_mask[: token_ids.shape[1], : token_ids.shape[1]])
        x = self.ln_final(x)
        eos_position = (token_ids == EOS).int().argmax(dim=1)   # first <eos>; the causal mask hides pads
        return self.text_projection(x[torch.arange(x.shape[0], device=x.device), eos_position])


# ----------------------------------------------------------------------------- open_clip adapter

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


class OpenClipEncoder(TextImageEncoder):
    """An open_clip `CLIP` model seen through the TextImageEncoder interface."""

    def __init__(self, model: nn.Module, image_size: int, context_length: int,
                 mean: tuple[float, ...] = OPENAI_MEAN, std: tuple[float, ...] = OPENAI_STD):
        super().__init__()
        from open_clip.tokenizer import SimpleTokenizer   # bundled BPE vocabulary: works offline

        self.model = model
        self.image_size, self.channels = image_size, 3
        self.mean, self.std = tuple(mean), tuple(std)
        self._tokenizer = SimpleTokenizer(context_length=context_length)

    @property
    def token_embedding(self) -> nn.Embedding:          # type: ignore[override]
        return self.model.token_embedding

    @property
    def positional_embedding(self) -> nn.Parameter:     # type: ignore[override]
        return self.model.positional_embedding

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale.exp().clamp(max=100.0)

    def tokenize(self, captions: list[str]) -> torch.Tensor:
        return self._tokenizer(list(captions))

    def encode_image(self, x_normalised: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(x_normalised)

    def encode_text(self, token_ids: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text(token_ids)


TINY_OPEN_CLIP = "tiny"   # recipe.open_clip_arch naming tiny_open_clip_config (the paper dry run)


def tiny_open_clip_config() -> dict:
    """A randomly initialised small open_clip CLIP (32 px ViT, 1-layer text tower): tests and the dry run."""
    return {"embed_dim": 32,
            "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
            "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


def build_open_clip(arch: str = "ViT-B-32", pretrained: str | None = "openai",
                    model_config: dict | None = None, cache_dir: str | None = None) -> OpenClipEncoder:
    """open_clip's `arch` with `pretrained` weights (downloaded by open_clip), or `model_config`
    (an open_clip CLIP config dict, random init) when given. Offline downloads fail in one line."""
    import open_clip

    if model_config is not None:
        from open_clip.model import CLIP

        model = CLIP(**model_config)
    else:
        if arch not in open_clip.list_models():
            raise ReprolibError(f"unknown open_clip model {arch!r}; valid choices: e.g. ViT-B-32, ViT-B-16, RN50")
        try:
            model = open_clip.create_model(arch, pretrained=pretrained, cache_dir=cache_dir)
        except Exception as err:   # network / hub errors come in many types; report one line
            first = re.sub(r"\s+", " ", str(err))[:200]
            raise ReprolibError(f"could not load open_clip {arch} weights {pretrained!r} (needs internet "
                                f"on first use): {type(err).__name__}: {first}") from None
    from open_clip.model import get_model_preprocess_cfg

    cfg = get_model_preprocess_cfg(model)   # size / mean / std of the pretrained tag, when known
    size = cfg.get("size", getattr(model.visual, "image_size", 224))
    size = size[0] if isinstance(size, (tuple, list)) else int(size)
    model.eval()
    return OpenClipEncoder(model, image_size=size, context_length=model.positional_embedding.shape[0],
                           mean=tuple(cfg.get("mean", OPENAI_MEAN)), std=tuple(cfg.get("std", OPENAI_STD)))
