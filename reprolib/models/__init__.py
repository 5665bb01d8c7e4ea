"""Backbones: the registry of specs (`get_spec`, `names`) and `get_backbone` / `from_network`.

- `reprolib.models.registry`: one `BackboneSpec` per backbone (`names()` lists them): builder,
  input size, channels, normalisation, source classes, feature width, family, where its weights
  come from, how its tickets are made.
- `reprolib.models.build`: `get_backbone(name, weights="default" | None | path, root,
  download) -> Backbone` and `from_network(name, net)`.
- `reprolib.models.backbone`: the `Backbone` module every transfer method talks to.

`import reprolib.models` does not import torch: the registry is plain data, and the
torch-backed names (`get_backbone`, `from_network`, `Backbone`) are loaded on first use
through the module `__getattr__` below (the reason for its imports inside a function).
"""

from __future__ import annotations

from typing import Any

from reprolib.models.registry import (
    FASHION_MNIST_MEAN, FASHION_MNIST_STD, IMAGENET_MEAN, IMAGENET_STD, BackboneSpec, get_spec, names,
)


def __getattr__(name: str) -> Any:
    if name == "get_backbone":
        from reprolib.models.build import get_backbone

        return get_backbone
    if name == "from_network":
        from reprolib.models.build import from_network

        return from_network
    if name == "Backbone":
        from reprolib.models.backbone import Backbone

        return Backbone
    raise AttributeError(f"module 'reprolib.models' has no attribute {name!r}")


__all__ = ["Backbone", "BackboneSpec", "get_backbone", "from_network", "get_spec", "names",
           "FASHION_MNIST_MEAN", "FASHION_MNIST_STD", "IMAGENET_MEAN", "IMAGENET_STD"]
