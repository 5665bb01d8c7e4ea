"""`make_tickets(profile, levels, kinds)`: tickets the way the profile's backbone makes them.

The backbone's registry spec decides (`get_spec(profile.backbone).tickets`): "imp" runs
IMP with rewinding on the upstream model trained here (`reprolib.sparsity.imp`), "oneshot"
records the one-shot pruned pretrained weights (`reprolib.sparsity.oneshot`).
"""

from __future__ import annotations

from typing import Any

from reprolib.models import get_spec
from reprolib.sparsity.imp import make_imp_tickets
from reprolib.sparsity.oneshot import oneshot_reports
from reprolib.sparsity.upstream import SourceData


def make_tickets(profile: Any, levels: list[int], kinds: list[str] | tuple[str, ...] = ("imp",),
                 data: SourceData | None = None, progress: bool = True) -> list[dict[str, Any]]:
    """Make (or find) every requested (kind, level); baselines skip level 0 (= dense).

    Returns one summary per ticket (its sparsity.json plus `path` and `status`:
    "made" or "existing"), in the order of `kinds`, levels ascending. `data` (the source
    set) and `progress` only matter for IMP.
    """
    if get_spec(profile.backbone).tickets == "imp":
        return make_imp_tickets(profile, levels, kinds, data=data, progress=progress)
    return oneshot_reports(profile, levels, kinds)
