"""reprolib: a reproducible workbook for visual reprogramming under constraints.

Data flows one way:
config -> data -> backbone (+ ticket) -> method (prompt + label map, or linear head)
-> train -> evaluate -> record -> ledger -> tables and figures.

Importing the package is cheap on purpose (no torch at import time): the submodules
(`reprolib.data`, `reprolib.models`, `reprolib.scores.metrics`, ...) load what they need.
"""

__version__ = "0.1.0"

from reprolib.errors import ReprolibError  # noqa: E402  (tiny, no heavy deps)
from reprolib import determinism as _determinism  # noqa: E402  (no torch: it must run before torch loads)

_determinism.pin_environment()   # CPU kernels' instruction set and threads: same numbers on every AVX2 machine

__all__ = ["ReprolibError", "__version__"]
