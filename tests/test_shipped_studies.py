"""What must not move when an entry is added: the shipped studies, pinned in one golden file.

tests/golden/shipped_studies.json holds, for each offline study whose results ship (embedded,
imagenet-lite), its grid as `sweep.runner.build_grid` lists it (by study key: target, arm, network,
ticket kind, level, n_shot, seed), its arms (label, colour, place in the prompt comparison), its
targets' OOD partners and the sides its arms load and store each target at; and every registered
method's numbers under every preset. The test computes them from the code and compares: adding a
backbone, dataset, method, arm, label map or preset passes, changing what a shipped study runs
fails. The file was first written from the code before the registries took over these facts.

When a shipped study is meant to change (a new profile value, a regenerated study), rewrite the
file with `python tests/test_shipped_studies.py` and say why in the commit.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent / "golden" / "shipped_studies.json"
SHIPPED = ("embedded", "imagenet-lite")


def study(name: str) -> dict:
    """The pinned facts of shipped study `name`, computed from the code."""
    from reprolib.config import load_profile
    from reprolib.data import info
    from reprolib.models.registry import get_spec
    from reprolib.protocols import get_protocol
    from reprolib.study.ledger import arm_name
    from reprolib.sweep.runner import build_grid
    from reprolib.transfer import registry
    from reprolib.transfer.ood_eval import ood_partners

    profile = load_profile(name)
    grid, backbone, protocol = build_grid(profile), get_spec(profile.backbone), get_protocol(profile.protocol)
    order = [arm.name for arm in registry.arms()]
    by_name = {arm.name: arm for arm in registry.arms()}
    arms = sorted({arm_name(c.method, c.label_map) for c in grid}, key=order.index)

    def sides(method: str, target: str) -> dict:
        spec = registry.get(method)
        return {**{split: spec.load_side(backbone, info(target), protocol, split) for split in ("train", "test")},
                "prompt_size": spec.prompt_size(backbone, info(target))}

    return {
        "protocol": profile.protocol,
        "runs": [[c.target, arm_name(c.method, c.label_map), c.network, c.kind, c.level, c.n_shot, c.seed]
                 for c in grid],
        "arms": {a: {"label": by_name[a].label, "color": by_name[a].color, "short": by_name[a].short,
                     "panel": by_name[a].panel} for a in arms},
        "ood_partners": {t: list(ood_partners(t, profile)) for t in profile.targets},
        "sides": {a: {t: sides(by_name[a].method, t) for t in profile.targets} for a in arms},
    }


def method_numbers() -> dict:
    """Every registered method's own numbers under every preset (transfer.registry.method_hparams)."""
    from reprolib.protocols import get_protocol, names
    from reprolib.transfer import registry

    return {m: {p: registry.method_hparams(registry.get(m), get_protocol(p)) for p in names()}
            for m in registry.names()}


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text())


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_study_is_what_it_was(golden, name):
    pinned, now = golden["studies"][name], study(name)
    assert len(now["runs"]) == len(pinned["runs"])
    assert now["runs"] == pinned["runs"]          # the grid, run for run, in order
    for key in ("protocol", "arms", "ood_partners", "sides"):
        assert now[key] == pinned[key], key


def test_every_pinned_method_keeps_its_numbers_under_every_pinned_preset(golden):
    now = method_numbers()
    for method, by_preset in golden["method_hparams"].items():
        for preset, numbers in by_preset.items():
            assert now[method][preset] == numbers, (method, preset)   # values and their types (JSON)
            assert [type(v) for v in now[method][preset].values()] == [type(v) for v in numbers.values()]


def test_the_shipped_studies_sizes():
    """Each offline study's shipped ledger holds one row per run of its pinned grid (the README's counts)."""
    import pandas as pd

    checkout = Path(__file__).resolve().parents[1]
    assert {name: len(json.loads(GOLDEN.read_text())["studies"][name]["runs"]) for name in SHIPPED} == \
        {name: len(pd.read_csv(checkout / "artifacts" / name / "ledger.csv")) for name in SHIPPED}


def write() -> None:
    """Rewrite the golden file from the code (one run per line), in an empty workbook home as the
    tests run (tickets made in the checkout must not change a grid)."""
    import os
    import tempfile

    os.environ["REPROLIB_HOME"] = tempfile.mkdtemp()
    text = json.dumps({"studies": {name: study(name) for name in SHIPPED}, "method_hparams": method_numbers()},
                      indent=1)
    text = re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + ", ".join(s.strip() for s in m.group(1).split(","))
                  + "]", text)
    GOLDEN.write_text(text + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(GOLDEN.parents[2]))
    write()
