"""The sweep's grid: one TransferConfig per run of a profile (reprolib.sweep.runner's docstring).

`build_grid(profile)`: targets x arms ("lp" or "method/label_map") x tickets (dense = IMP level
0, the IMP levels, and each baseline kind at `baseline_level`) x n-shots x seeds (full-data runs
`profile.full_data_seeds`, few-shot runs `profile.seeds`): ticket replicate 1. Then the cells of
`profile.subgrids` (config.Subgrid) on every ticket replicate, seeds 1..S of replicate r moved by
config.replicate_seed (docs/methods.md s.12), runs already listed once.
"""

from __future__ import annotations

from typing import Any

from reprolib import paths
from reprolib.config import Profile, replicate_seed, subgrids
from reprolib.errors import ReprolibError, check_type
from reprolib.sparsity.network import grid_networks
from reprolib.transfer import registry as method_registry
from reprolib.transfer.config import TransferConfig


def parse_arm(arm: str) -> tuple[str, str | None]:
    """'lp' -> ('lp', None); 'vp/ilm' -> ('vp', 'ilm'); the method registry says which needs a map."""
    check_type("method", arm, str)
    method, _, label_map = arm.partition("/")
    needs_label_map = method_registry.get(method).needs_label_map
    if not needs_label_map and label_map:
        raise ReprolibError(f"method {arm!r}: {method} takes no label map; valid form: {method!r}")
    if needs_label_map and not label_map:
        raise ReprolibError(f"method {arm!r} needs a label map; valid form: 'method/label_map', e.g. 'vp/ilm'")
    return method, label_map or None


def tickets_of(profile: Profile) -> list[tuple[str, str, int, str | None]]:
    """(network, kind, level, pretrained_dir) of every network in the grid, dense first
    (reprolib.sparsity.network.grid_networks: imported tickets last, by name)."""
    return grid_networks(profile)


def build_grid(profile: Profile) -> list[TransferConfig]:
    """Every TransferConfig of the profile's study, in a stable order (targets outermost; then the
    subgrids, replicate by replicate)."""
    check_type("profile", profile, Profile)
    results_path = str(paths.runs_dir(profile.path("artifacts")))
    common = dict(profile=profile.profile, protocol=profile.protocol, device=profile.device,
                  results_path=results_path, progress=False)
    configs = []
    for target in profile.targets:
        for arm in profile.methods:
            method, label_map = parse_arm(arm)
            for network, kind, level, pretrained_dir in tickets_of(profile):
                for n_shot in profile.n_shots:
                    for seed in (profile.full_data_seeds if n_shot == -1 else profile.seeds):
                        configs.append(TransferConfig(
                            target=target, method=method, label_map=label_map, network=network, kind=kind,
                            level=level, pretrained_dir=pretrained_dir, n_shot=n_shot, seed=seed, **common))
    listed = {_run_key(c) for c in configs}
    for config in _subgrid_configs(profile, common):
        if _run_key(config) not in listed:
            listed.add(_run_key(config))
            configs.append(config)
    return configs


def _subgrid_configs(profile: Profile, common: dict[str, Any]) -> list[TransferConfig]:
    """The profile's subgrids on each ticket replicate: dense and IMP levels, seeds 1..S of
    replicate r as replicate_seed(seed, r), so every (replicate, seed) unit runs its own dense model."""
    configs = []
    for block in subgrids(profile):
        for replicate in range(1, block.replicates + 1):
            for target in block.targets:
                for arm in block.methods:
                    method, label_map = parse_arm(arm)
                    for level in block.levels:
                        network = "dense" if level == 0 else "LT"
                        for n_shot in block.n_shots:
                            for seed in range(1, block.seeds + 1):
                                configs.append(TransferConfig(
                                    target=target, method=method, label_map=label_map, network=network, kind="imp",
                                    level=level, replicate=replicate, n_shot=n_shot,
                                    seed=replicate_seed(seed, replicate), **common))
    return configs


def _run_key(config: TransferConfig) -> tuple:
    return (config.target, config.method, config.label_map, config.network, config.kind, config.level,
            config.pretrained_dir, config.replicate, config.n_shot, config.seed)
