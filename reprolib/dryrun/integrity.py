"""The md5 bypass for synthetic CIFAR / SVHN / Flowers102 lives in the leaf `reprolib.data.integrity`
(so the data loaders can apply it to dry-run roots without an import cycle); re-exported here."""

from __future__ import annotations

from reprolib.data.integrity import (DRYRUN_MARKER, PATCHED_MODULES, bypassed_for_root, integrity_checks_bypassed,
                                is_dryrun_root)

__all__ = ["DRYRUN_MARKER", "PATCHED_MODULES", "bypassed_for_root", "integrity_checks_bypassed", "is_dryrun_root"]
