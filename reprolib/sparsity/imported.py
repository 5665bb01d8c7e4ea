"""Tickets made elsewhere: `import_ticket` puts a checkpoint into our layout, `fetch_ticket`
downloads one from the curated table (`reprolib.sparsity.catalog`) and imports it.

Layout: `<artifacts>/tickets/imported/<name>/{model.pth, mask.pth, sparsity.json}` (paths.
imported_ticket_dir), readable by `load_ticket` like any level folder of ours. The report
(sparsity.json, written last: a folder is complete exactly when it exists) says what the
network is: provenance "imported", its source, the file's format and key naming, the
checkpoint's sha256, the density in both conventions (over every conv / linear weight the
mask covers, and RLT's), the published top-1 when known, and `upstream_test_accuracy`:
None until `tickets evaluate --imagenet DIR` measures it (never copied from a paper).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from reprolib import paths
from reprolib.errors import ReprolibError
from reprolib.sparsity import catalog
from reprolib.sparsity import masks as M
from reprolib.sparsity.load import IMPLICIT_MASK, read_ticket

PROVENANCE = "imported"
DOWNLOAD_TIMEOUT_S = 60
_CHUNK = 1 << 20


def sha256_of(file: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def import_ticket(file: str | os.PathLike, name: str, artifacts: str | os.PathLike, backbone: str,
                  mask: str | None = None, source: str | None = None,
                  published: catalog.PublishedTicket | None = None) -> dict[str, Any]:
    """Read `file` (any format load_ticket reads), verify it, write it under `name`; returns the report.

    A single file without `mask` has its mask in its zeros (or embedded: prune / open_lth
    buffers); a directory is read as load_ticket reads it. Importing the same checkpoint
    again under the same name is a no-op (status "existing"); another one is an error.
    Many parameters because: the file, its name and home, the backbone, and three optional
    facts about where it came from.
    """
    file = Path(file)
    directory = paths.imported_ticket_dir(artifacts, name)
    if not file.exists():
        raise ReprolibError(f"missing checkpoint {file}: expected a file or a ticket directory")
    checksum = sha256_of(file) if file.is_file() else None
    if M.is_complete(directory):
        report = M.load_json(directory / "sparsity.json")
        if checksum is not None and report.get("checkpoint_sha256") == checksum:
            return {**report, "path": str(directory), "status": "existing"}
        raise ReprolibError(f"ticket {name!r} already exists at {directory} from another checkpoint; "
                            f"choose another --name or delete that folder")
    if file.is_file() and mask is None:
        mask = IMPLICIT_MASK
    ticket = read_ticket(file, arch=backbone, mask=mask)
    report = {"name": name, "backbone": backbone, "provenance": PROVENANCE,
              "source": source or (published.source() if published else f"imported from {file.name}"),
              "format": ticket.format, "key_naming": ticket.key_naming or "torchvision",
              "checkpoint_sha256": checksum, "checkpoint_was_masked": ticket.checkpoint_was_masked,
              "density": ticket.density, "density_rlt": ticket.density_rlt,
              "measured_density": ticket.measured_density,
              "published_top1": published.published_top1 if published else None,
              "published_sparsity": published.sparsity if published else None,
              "upstream_test_accuracy": None, "upstream_measured_on": None}
    M.save_tensors(directory / "model.pth", ticket.net.state_dict())
    M.save_tensors(directory / "mask.pth", ticket.mask)
    report = M.save_report(directory, report)   # last: the folder is complete now
    return {**report, "path": str(directory), "status": "imported"}


def download(url: str, target: Path, expected_sha256: str | None) -> str:
    """Copy `url` (https://, file://) to `target` atomically, checking the sha256 when given; returns it."""
    check_address(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(partial, "wb") as out:
            for block in iter(lambda: response.read(_CHUNK), b""):
                digest.update(block)
                out.write(block)
    except (urllib.error.URLError, OSError, ValueError) as err:
        partial.unlink(missing_ok=True)
        reason = getattr(err, "reason", None) or err
        raise ReprolibError(f"cannot download {url}: {reason} (offline? download it by hand and run "
                            f"`python -m reprolib tickets import FILE --name NAME`)") from None
    found = digest.hexdigest()
    if expected_sha256 is not None and found != expected_sha256.lower():
        partial.unlink(missing_ok=True)
        raise ReprolibError(f"checksum mismatch for {url}: sha256 {found}, expected {expected_sha256}; nothing kept")
    os.replace(partial, target)
    return found


def fetch_ticket(name: str, artifacts: str | os.PathLike, url: str | None = None,
                 sha256: str | None = None) -> dict[str, Any]:
    """Download the curated checkpoint `name` (or `url` for it) and import it under `name`."""
    entry = catalog.get(name)
    if entry.mask == "tensorflow":
        raise ReprolibError(f"{name} is a TensorFlow checkpoint ({entry.page}); convert it to a PyTorch state dict "
                            f"first (docs/methods.md s.11), then `python -m reprolib tickets import FILE --name {name}`")
    address = url or entry.url
    if address is None:
        raise ReprolibError(f"no direct download address is known for {name}; download it from {entry.page} and run "
                            f"`python -m reprolib tickets import FILE --name {name}` (or pass --url)")
    check_address(address)
    target = paths.tickets_root(artifacts) / "downloads" / f"{name}.pth"
    new_folders = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
    expected = sha256 or entry.sha256
    try:
        found = download(address, target, expected)
        verified = f"sha256 {found} verified" if expected else f"sha256 {found} NOT verified (no published checksum)"
        report = import_ticket(target, name, artifacts, entry.backbone, published=entry,
                               source=f"{entry.source()}; fetched from {address}; {verified}")
    except BaseException:
        # A download that fails or does not import (wrong architecture, bad file) leaves nothing.
        target.unlink(missing_ok=True)
        for folder in new_folders:   # deepest first; only the folders this call made, if empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return {**report, "download_sha256": found, "checksum_verified": bool(expected)}


ADDRESS_SCHEMES = ("https", "file")


def check_address(url: str) -> str:
    """Only https:// (and file:// for a local copy): plain http, ftp or data: could hand back anything."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in ADDRESS_SCHEMES:
        raise ReprolibError(f"cannot fetch from {url!r}: scheme {scheme or '(none)'!r}; valid choices: "
                            f"{', '.join(s + '://' for s in ADDRESS_SCHEMES)}")
    return url


def imported_reports(artifacts: str | os.PathLike) -> list[dict[str, Any]]:
    """The report of every complete imported ticket, with its `path`."""
    return [{**M.load_json(d / "sparsity.json"), "path": str(d)} for d in paths.imported_ticket_dirs(artifacts)]
