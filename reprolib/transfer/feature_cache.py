"""LP features computed once and reused by every linear-probe run on the same network and images.

A frozen backbone in eval mode maps an image to the same penultimate features in every run,
so the features of a target's test split (and of its full training split, its OOD images)
are the same for every n-shot, seed and epoch count of one (network, target, input size).
`FeatureStore.features(backbone, images, device)` returns them from memory, else from
`<artifacts>/features/<key>.pt`, else computes them (`linear_probe.extract_features`) and
writes that file atomically (temp file + rename), so parallel sweep workers never read a
half-written file and a killed run leaves nothing behind.

The key is a hash of what produced the features: the backbone's weights and buffers and its
input facts (class, input size, channels, mean/std), the images' fingerprint (`fingerprint()`
of the split: the stored bytes, or the digest of a paper split's cache file, and the
positions of the (few-shot) subset in it: it names the target, the split, the load side and
the subset at once), the feature batch and the device type (CUDA and CPU round
differently). It cannot go stale: a re-made ticket or a re-drawn subset is a new key.
Loaded features are bit-identical to freshly computed ones, so cached runs give the same
numbers. A feature file that cannot be read (truncated, corrupt) is named in one line,
removed and computed again.

Where the remembered features live: on an accelerator, on the device while they fit the
process's resident budget (reprolib.devices.RESIDENT: a ResNet-50's 2,048 float32 features are
8 KiB an image, so CIFAR-10's 60,000 images take 0.5 GB of the H100's 20 GiB budget), so a run's
head trains on them with nothing crossing from the host; else on the host, at most
`MEMORY_BYTES` of them (the run then streams minibatches of features to the device,
reprolib.transfer.inputs). On the CPU they stay on the host, as they always did.
"""

from __future__ import annotations

import hashlib
import sys
import weakref
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from reprolib.devices import RESIDENT, on_host, to_device, to_host
from reprolib.records import atomic_torch_save

MEMORY_ITEMS = 8             # feature tensors kept in memory per process (a sweep worker's recent splits)
MEMORY_BYTES = 2 * 1024 ** 3  # and at most this many bytes of them on the host (one is always kept)

_FINGERPRINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def backbone_fingerprint(backbone) -> str:
    """Hash of a backbone's state (weights, buffers) and input facts; memoised per object
    (the transfer backbones are frozen)."""
    if backbone in _FINGERPRINTS:
        return _FINGERPRINTS[backbone]
    digest = hashlib.blake2b(digest_size=16)
    facts = (type(backbone).__name__, backbone.input_size, backbone.channels,
             tuple(map(float, backbone.mean)), tuple(map(float, backbone.std)))
    digest.update(repr(facts).encode())
    for name, tensor in backbone.state_dict().items():
        digest.update(name.encode())
        digest.update(_tensor_bytes(tensor))
    _FINGERPRINTS[backbone] = digest.hexdigest()
    return _FINGERPRINTS[backbone]


def _tensor_bytes(tensor: Tensor) -> bytes:
    t = tensor.detach().cpu().contiguous().reshape(-1)   # 1-d: scalars (BN counters) view as bytes too
    return repr((tuple(tensor.shape), str(t.dtype))).encode() + t.view(torch.uint8).numpy().tobytes()


def images_fingerprint(images) -> str:
    """Hex digest naming a set of images: `images.fingerprint()` (an ImageSplit, pooled OOD
    images) or, for a plain tensor, its shape, dtype and bytes."""
    if hasattr(images, "fingerprint"):
        return images.fingerprint()
    return hashlib.blake2b(_tensor_bytes(images), digest_size=16).hexdigest()


def feature_key(backbone, images, device: str, batch_size: int) -> str:
    """The file stem for the features of `images` (a split or a tensor) under `backbone` (module docstring)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(backbone_fingerprint(backbone).encode())
    digest.update(repr((str(device).split(":")[0], batch_size)).encode())
    digest.update(images_fingerprint(images).encode())
    return digest.hexdigest()


class FeatureStore:
    """Features by key: in memory (LRU, `MEMORY_ITEMS` and `MEMORY_BYTES`), then on disk under `directory`
    (None: memory only), else computed by `compute(images)` and stored."""

    def __init__(self, directory: str | Path | None, memory_items: int = MEMORY_ITEMS):
        self.directory = None if directory is None else Path(directory)
        self.memory_items = memory_items
        self._memory: OrderedDict[str, Tensor] = OrderedDict()
        self.computed = 0   # feature passes this store ran (the rest came from memory or disk)

    def _memory_bytes(self) -> int:
        """Bytes of remembered features on the host (those on a device count against its budget)."""
        return sum(_nbytes(t) for t in self._memory.values() if t.device.type == "cpu")

    def path(self, key: str) -> Path | None:
        return None if self.directory is None else self.directory / f"{key}.pt"

    def features(self, key: str, compute: Callable[[], Tensor], device: str) -> Tensor:
        """The features under `key`: remembered, read, or computed and written; on `device` when
        they fit its resident budget, else on the host (module docstring)."""
        if key in self._memory:
            self._memory.move_to_end(key)
            return self._memory[key]
        path = self.path(key)
        features = _read_cached(path) if path is not None and path.is_file() else None
        if features is None:
            features = compute().detach()
            self.computed += 1
            if path is not None:   # one read of the whole pass, never per minibatch
                atomic_torch_save(to_host(features, "features"), path)
        features = _place(features, device)
        self._memory[key] = features
        while len(self._memory) > 1 and (len(self._memory) > self.memory_items or self._memory_bytes() > MEMORY_BYTES):
            _, dropped = self._memory.popitem(last=False)
            if dropped.device.type != "cpu":
                RESIDENT.release(dropped.device, _nbytes(dropped))
        return features


def _nbytes(tensor: Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def _place(features: Tensor, device: str) -> Tensor:
    """On `device` when it is an accelerator and they fit its resident budget, else on the host."""
    if not on_host(device) and RESIDENT.reserve(device, _nbytes(features)):
        return features if features.device.type != "cpu" else to_device(features, device)
    return features if features.device.type == "cpu" else to_host(features, "features")


def _read_cached(path: Path) -> Tensor | None:
    """A cache file's features, or None when it is unreadable (cut, corrupt): then it is rebuilt."""
    try:
        features = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:   # torch raises many types for a bad file; all mean "rebuild it"
        features, reason = None, f"{type(err).__name__}: {' '.join(str(err).split())[:80]}"
    else:
        reason = f"holds a {type(features).__name__}, not a tensor"
    if isinstance(features, Tensor):
        return features
    print(f"warning: feature cache {path} is unreadable ({reason}); rebuilding it", file=sys.stderr)
    return None


_STORES: dict[str, FeatureStore] = {}


def store_for(directory: str | Path | None) -> FeatureStore:
    """One store per folder per process, so a sweep worker's runs share its memory cache."""
    name = str(directory)
    if name not in _STORES:
        _STORES[name] = FeatureStore(directory)
    return _STORES[name]
