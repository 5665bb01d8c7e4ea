"""The smoke profile with its dense model, and one real smoke transfer run (1 epoch on digits)."""

from __future__ import annotations

from pathlib import Path


def smoke_with_dense_model():
    """The smoke profile, its dense upstream model (IMP level 0) made if this test home lacks it."""
    from reprolib.config import load_profile
    from reprolib.sparsity import make_tickets
    from reprolib.sparsity.masks import is_complete, ticket_dir

    profile = load_profile("smoke")
    if not is_complete(ticket_dir(profile.path("artifacts"), "imp", 0)):
        make_tickets(profile, levels=[0], kinds=["imp"], progress=False)
    return profile


def one_smoke_run(folder: Path, method: str, n_shot: int):
    """(TransferConfig, record) of one smoke run of `method` into `folder`, the dense model made first."""
    from reprolib.transfer.config import TransferConfig
    from reprolib.transfer.run import run_transfer

    smoke_with_dense_model()
    cfg = TransferConfig(profile="smoke", target="digits", method=method, n_shot=n_shot, epochs=1, device="cpu",
                         results_path=str(folder), progress=False)
    return cfg, run_transfer(cfg)


def profile_copy(source: str, folder: Path, name: str, **changes) -> Path:
    """A copy of the registered profile `source` as `<folder>/<name>.yaml`, named `name`, with `changes`
    (its artifacts under `artifacts/<name>` unless changed); load it by that path."""
    import yaml

    from reprolib.paths import PACKAGE_DIR

    values = yaml.safe_load((PACKAGE_DIR / "profiles" / f"{source}.yaml").read_text())
    values.update({"profile": name, "artifacts": f"artifacts/{name}", "figures": f"figures/{name}", **changes})
    path = Path(folder) / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path
