"""`make_tickets(profile, levels, kinds)`: tickets the way the profile's backbone makes them.

The backbone's registry spec decides (`get_spec(profile.backbone).tickets`): "imp" runs
IMP with rewinding on the upstream model trained here (`reprolib.sparsity.imp`), "oneshot"
records the one-shot pruned pretrained weights (`reprolib.sparsity.oneshot`).
`import_profile_tickets(profile)` brings in the tickets made elsewhere that the profile names
(`tickets.imported`), through `reprolib.sparsity.imported`.
"""

from __future__ import annotations

from typing import Any

from reprolib import paths
from reprolib.models import get_spec
from reprolib.sparsity.imp import make_imp_tickets
from reprolib.sparsity.imported import fetch_ticket, import_ticket
from reprolib.sparsity.masks import is_complete, load_json
from reprolib.sparsity.oneshot import oneshot_reports
from reprolib.sparsity.recipe import TicketRecipe
from reprolib.sparsity.upstream import SourceData


def make_tickets(profile: Any, levels: list[int], kinds: list[str] | tuple[str, ...] = ("imp",),
                 data: SourceData | None = None, progress: bool = True, replicates: tuple[int, ...] = (1,),
                 workers: int = 1) -> list[dict[str, Any]]:
    """Make (or find) every requested (kind, level); baselines skip level 0 (= dense).

    Returns one summary per ticket (its sparsity.json plus `path` and `status`:
    "made" or "existing"), in the order of `kinds`, levels ascending. `data` (the source
    set), `progress`, the ticket `replicates` and the `workers` that make them in parallel only
    matter for IMP (one-shot networks are deterministic: Profile validation allows one replicate).
    """
    if get_spec(profile.backbone).tickets == "imp":
        return make_imp_tickets(profile, levels, kinds, data=data, progress=progress, replicates=replicates,
                                workers=workers)
    return oneshot_reports(profile, levels, kinds)


def import_profile_tickets(profile: Any) -> list[dict[str, Any]]:
    """Import (or find) every ticket the profile's `tickets.imported` names; returns their reports.

    Source "" : already imported, else fetched from the curated table by its name; an
    address (scheme://): fetched from there; anything else: a local file or folder, relative
    to the workbook home, imported for the profile's backbone.
    """
    artifacts = profile.path("artifacts")
    out = []
    for name, source in TicketRecipe.for_profile(profile).imported.items():
        directory = paths.imported_ticket_dir(artifacts, name)
        if is_complete(directory):
            out.append({**load_json(directory / "sparsity.json"), "path": str(directory), "status": "existing"})
        elif not source or "://" in source:
            out.append(fetch_ticket(name, artifacts, url=source or None))
        else:
            out.append(import_ticket(paths.resolve(source), name, artifacts, profile.backbone,
                                     source=f"profile {profile.profile}: {source}"))
    return out
