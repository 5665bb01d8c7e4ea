"""Paper dry run: synthetic data in torchvision's on-disk formats, random "ImageNet" weights.

The paper profile reads torchvision's real datasets and ImageNet checkpoints, which need
internet. A dry run runs the same code on stand-ins written where and how torchvision
expects them, so that reprolib's own loaders (reprolib.data.get_dataset,
reprolib.models.get_backbone) take their real code path offline:

    from reprolib.dryrun import write_dryrun_root, integrity_checks_bypassed
    summary = write_dryrun_root("data/dryrun")            # every set + every torchvision backbone
    split = get_dataset("cifar10", "train", root="data/dryrun")   # md5 bypass: marked root of paper-dryrun

write_dryrun_root marks the root (DRYRUN_MARKER); reprolib's torchvision loader applies the
CIFAR/SVHN/Flowers md5 bypass (integrity_checks_bypassed) only to a marked root that a loaded
`data_integrity: dryrun` profile (paper-dryrun) names as its data_root: a marker alone does nothing.

Modules: formats (one writer per dataset, table of formats and checks), integrity (the
md5 bypass and why), weights (checkpoint file names, why no hash check applies), synth
(class-dependent images, atomic writes). Nothing here is imported by the rest of reprolib (the bypass itself is the leaf reprolib.data.integrity).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from reprolib.dryrun.formats import NEEDS_BYPASS, dataset_names, write_synthetic_dataset
from reprolib.dryrun.integrity import DRYRUN_MARKER, PATCHED_MODULES, integrity_checks_bypassed, is_dryrun_root
from reprolib.dryrun.weights import (SPARSE_DIR, arch_names, checkpoint_path, write_random_imagenet_weights,
                                     write_sparse_checkpoint)
from reprolib.errors import check_choice
from reprolib.models.registry import get_spec
from reprolib.records import atomic_write

DEFAULT_ARCHS = tuple(arch_names())        # every registered backbone with torchvision weights
HUB_SUBDIR = "torch_hub"                    # paper profile: get_backbone(root=<data_root>/torch_hub)


def write_dryrun_root(root: str | os.PathLike, datasets: tuple[str, ...] | list[str] | None = None,
                      archs: tuple[str, ...] | list[str] | None = DEFAULT_ARCHS, *,
                      n_per_class_train: int = 2, n_per_class_test: int = 2, seed: int = 0,
                      torch_home: str | os.PathLike | None = None) -> dict:
    """Write a whole dry-run data root; skips whatever is already there (idempotent).

    root: the profile's data_root. Datasets go to root/<name>/ (datasets=None: all of
    dataset_names()). Weights for `archs` go to root/torch_hub/<checkpoint file>, the
    directory the paper profile passes to get_backbone as `root` (reprolib.sparsity.network),
    or, with torch_home=, to torch_home/hub/checkpoints/ (torch hub's cache for TORCH_HOME).
    Returns {"root", "datasets": {name: record}, "weights": {arch: record},
    "integrity_bypass_needed": [names]}.
    """
    root = Path(root).expanduser()
    names = dataset_names() if datasets is None else list(datasets)
    for name in names:
        check_choice("dry-run dataset", name, dataset_names())
    arch_list = list(archs or ())
    for arch in arch_list:
        check_choice("dry-run arch", arch, arch_names())
    summary: dict = {"root": str(root), "datasets": {}, "weights": {}}
    for name in names:
        summary["datasets"][name] = write_synthetic_dataset(name, root, n_per_class_train, n_per_class_test,
                                                            seed=seed)
    for arch in arch_list:
        where = {"torch_home": torch_home} if torch_home is not None else {"checkpoint_dir": root / HUB_SUBDIR}
        summary["weights"][arch] = write_random_imagenet_weights(arch, seed=seed, **where)
        # a stand-in published sparse checkpoint (exact zeros) that the dry run imports as a ticket
        if get_spec(arch).family_spec.published_sparse:
            summary.setdefault("sparse", {})[arch] = write_sparse_checkpoint(arch, root / SPARSE_DIR, seed=seed)
    summary["integrity_bypass_needed"] = [n for n in names if n in NEEDS_BYPASS]
    # Marks the root as synthetic, written last: the loader bypasses the md5 checks here only
    # when the paper-dryrun profile (data_integrity: dryrun) names this root (reprolib.data.integrity).
    atomic_write(root / DRYRUN_MARKER, lambda f: f.write(json.dumps(
        {"written_by": "reprolib.dryrun.write_dryrun_root", "datasets": names, "archs": arch_list}) + "\n"), "w")
    return summary


__all__ = ["write_dryrun_root", "write_synthetic_dataset", "write_random_imagenet_weights", "write_sparse_checkpoint",
           "integrity_checks_bypassed", "dataset_names", "arch_names", "checkpoint_path",
           "NEEDS_BYPASS", "PATCHED_MODULES", "DEFAULT_ARCHS", "DRYRUN_MARKER", "is_dryrun_root"]
