"""Weights files: the one loader of what torch.save wrote, safe for a file anyone could have replaced.

`load_weights(path, remedy)` is torch.load(weights_only=True): tensors, dicts, lists, strings and
numbers come back; a file that asks for anything else (a pickle of code), a cut file or a
foreign one is one line (errors.UnsafeFile): "<path> is not a weights file reprolib can load
safely (why); <remedy>". Every weights file the workbook reads goes through it: tickets and the
dense model, the torchvision cache, the Reprogrammer's encoder, the glyphs cache, imports.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

from reprolib.errors import ReprolibError, UnsafeFile


def load_weights(path: str | Path, remedy: str = "") -> Any:
    """What `atomic_torch_save` (or torch.save) wrote at `path`, read with torch.load(weights_only=True):
    tensors, dicts, lists, strings, numbers and nothing else. A file that is not that (a pickle of
    anything else, a cut or foreign file) is one line (UnsafeFile) naming it "not a weights file
    reprolib can load safely", why, and `remedy`; nothing of it runs."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ReprolibError(f"missing file {path}")
    try:
        with warnings.catch_warnings():   # torch's pickle-protocol notes: the one line below says it all
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:   # torch raises many types for a bad file; all mean the same here
        raise UnsafeFile(f"{path} is not a weights file reprolib can load safely ({weights_problem(err)})"
                         + (f"; {remedy}" if remedy else "")) from None


def weights_problem(err: BaseException) -> str:
    """Why torch.load(weights_only=True) refused a file, in a few words."""
    text = re.sub(r"Weights only load failed\..*?trusted source\.\s*", "", " ".join(str(err).split()))
    unsafe = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+)", text)
    if unsafe:
        return f"it pickles {unsafe.group(1)}, which weights-only loading refuses; nothing of it ran"
    detail = re.search(r"WeightsUnpickler error: (.*?)(?: Check the documentation|$)", text) or \
        re.search(r"(.*?)(?: Check the documentation|$)", text)
    return f"not a PyTorch weights file: {type(err).__name__}: {((detail.group(1) if detail else text) or 'empty or truncated')[:100]}"
