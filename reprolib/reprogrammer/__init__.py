"""Reprogrammer (Geng & Chen, SaTML 2024; docs/methods.md s.6): reprogram a text-image encoder.

Public API (torch is imported lazily by the submodules):
- `run_reprogrammer_study(profile, targets=None, alphas=(0, .2, .4, .6, .8, 1), seed=None)`
  -> list of record dicts (also on disk under <artifacts>/reprogrammer/runs/).
- `shipped_reprogrammer_study(profile, targets=None, seed=None)` -> the records a checkout ships
  (without their logits), read without training or writing.
- `reprogrammer_table(records)` -> pandas.DataFrame.
- building blocks: encoders.{TextImageEncoder, TinyDualEncoder, OpenClipEncoder, build_open_clip},
  reprogram.{Reprogrammer, ImageReprogram, frame_mask, residual_mix}, loss, train, evaluate,
  recipe.{ReprogrammerRecipe, recipe_for} (the numbers come from the profile's `reprogrammer:` dict).
In the embedded profile the encoder is a small dual encoder trained here; it stands in for CLIP.
"""

from __future__ import annotations

from typing import Any


# The study is imported on call so that `import reprolib.reprogrammer` stays free of torch.
def run_reprogrammer_study(*args: Any, **kwargs: Any) -> list[dict]:
    from reprolib.reprogrammer.study import run_reprogrammer_study as run

    return run(*args, **kwargs)


def shipped_reprogrammer_study(*args: Any, **kwargs: Any) -> list[dict]:
    from reprolib.reprogrammer.study import shipped_reprogrammer_study as shipped

    return shipped(*args, **kwargs)


def reprogrammer_table(records: list[dict]) -> Any:
    from reprolib.reprogrammer.study import reprogrammer_table as table

    return table(records)


__all__ = ["run_reprogrammer_study", "shipped_reprogrammer_study", "reprogrammer_table"]
