"""The registries own every fact: method capabilities, prompt kinds, backbone families, arms.

No module outside the registry modules compares a value against a method name, prompt kind,
family name or arm name (an `ast` walk of reprolib/), and each fact read through its entry
has the value it had when it was spelled out where it was used.
"""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import pytest

from reprolib.data.catalog import info
from reprolib.errors import ReprolibError
from reprolib.study.ledger import arm_name
from reprolib.models.registry import FAMILIES, get_family, get_spec
from reprolib.models.registry import names as backbone_names
from reprolib.prompts import PROMPTS, get_kind
from reprolib.protocols import get_protocol
from reprolib.transfer import registry

REPROLIB = Path(__file__).resolve().parent.parent / "reprolib"
# The modules whose job is to say which name has which fact.
REGISTRY_MODULES = {Path("transfer/registry.py"), Path("models/registry.py"), Path("prompts/kinds.py")}
NAMED_BY_REGISTRIES = {*registry.names(), *PROMPTS, *FAMILIES, *(arm.name for arm in registry.arms())}


def _constants(node: ast.AST) -> list:
    """The constants a comparison or call argument holds: a literal, or a tuple / list / set of them."""
    if isinstance(node, ast.Constant):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [e.value for e in node.elts if isinstance(e, ast.Constant)]
    return []


def _names_a_registry_entry(value) -> bool:
    """A registry name, an arm of one ('vp/ilm'), or an arm prefix ('vp/')."""
    return isinstance(value, str) and (value in NAMED_BY_REGISTRIES or value.partition("/")[0] in registry.names()
                                       and "/" in value)


def _comparisons(tree: ast.AST):
    """(line, compared constants) of every ==, !=, in, not in, and .startswith / .endswith / .isin call."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            yield node.lineno, [c for side in (node.left, *node.comparators) for c in _constants(side)]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in ("startswith", "endswith", "isin"):
            yield node.lineno, [c for arg in node.args for c in _constants(arg)]


def test_no_module_outside_the_registries_compares_a_registered_name():
    offenders = []
    for path in sorted(REPROLIB.rglob("*.py")):
        relative = path.relative_to(REPROLIB)
        if relative in REGISTRY_MODULES:
            continue
        for line, values in _comparisons(ast.parse(path.read_text())):
            offenders += [f"{relative}:{line}: {v!r}" for v in values if _names_a_registry_entry(v)]
    assert offenders == []


def test_the_scan_sees_each_kind_of_comparison():
    source = ('a == "vp"\nb != "resnet"\nc in ("smm", 1)\nd.startswith("vp/")\ne.isin(["lp"])\n'
              'f == "vp/ilm"\ng == "cifar10"\nh.startswith("vpx")\n')
    found = [(line, v) for line, values in _comparisons(ast.parse(source)) for v in values
             if _names_a_registry_entry(v)]
    assert found == [(1, "vp"), (2, "resnet"), (3, "smm"), (4, "vp/"), (5, "lp"), (6, "vp/ilm")]


def test_method_capabilities_are_separate_fields():
    lp, vp, smm = (registry.get(n) for n in ("lp", "vp", "smm"))
    assert (lp.input_prompt, lp.needs_label_map, lp.groupable, lp.shared_features) == (False, False, False, True)
    for spec in (vp, smm, *(registry.get(n) for n in ("narrow", "medium", "full"))):
        assert (spec.input_prompt, spec.needs_label_map, spec.groupable, spec.shared_features) == (True, True, True, False)
    assert registry.prompt_methods() == ("vp", "smm", "narrow", "medium", "full")
    assert all(spec.applies_to(family) for spec in map(registry.get, registry.names()) for family in FAMILIES)


def test_cost_formulas_come_from_the_method_entry():
    from reprolib.sweep.cost import run_cost

    # LP: one feature pass over train + test + OOD; VP-ILM: 3 test passes, 3 mapping passes, 3 epochs fwd+bwd
    cost = run_cost("lp", None, 100, 50, 3, 7)
    assert (cost.fwd, cost.fwdbwd) == (157, 0)
    cost = run_cost("vp", "ilm", 100, 50, 3, 7)
    assert (cost.fwd, cost.fwdbwd) == (3 * 50 + 3 * 100 + 7, 300)
    cost = run_cost("smm", "flm", 100, 50, 3, 7, eval_passes=1)
    assert (cost.fwd, cost.fwdbwd) == (50 + 100 + 7, 300)
    cost = run_cost("full", "rlm", 100, 50, 3, 7)
    assert (cost.fwd, cost.fwdbwd) == (150 + 7, 300)


def test_arms_come_from_the_method_registry():
    from reprolib.plots.accuracy import SMM_PROMPTS
    from reprolib.plots.common import ARM_ORDER, PALETTE, arm_label

    assert ARM_ORDER == ["lp", "vp/ilm", "vp/flm", "vp/rlm", "smm/ilm", "narrow/ilm", "medium/ilm", "full/ilm"]
    assert PALETTE == {"lp": "#1f77b4", "vp/ilm": "#d62728", "vp/flm": "#ff7f0e", "vp/rlm": "#e377c2",
                       "smm/ilm": "#2ca02c", "narrow/ilm": "#9467bd", "medium/ilm": "#8c564b", "full/ilm": "#17becf"}
    assert SMM_PROMPTS == {"vp/ilm": "pad", "narrow/ilm": "narrow", "medium/ilm": "medium", "full/ilm": "full",
                           "smm/ilm": "smm"}
    assert (arm_label("vp/ilm"), arm_label("lp"), arm_label("vp/flm_grey")) == ("VP-ILM", "LP", "vp/flm_grey")
    for arm in registry.arms():
        assert arm.name == arm_name(arm.method, arm.label_map)
    assert registry.role_method("probe").name == "lp" and registry.role_method("prompt").name == "vp"
    assert registry.method_of_arm("vp/flm_grey").name == "vp" and registry.method_of_arm("zero_shot") is None
    with pytest.raises(ReprolibError, match="unknown method role 'head'; valid choices: probe, prompt"):
        registry.role_method("head")


def test_claims_pick_the_registry_arms():
    import pandas as pd

    from reprolib.study.claims import _is_prompt_arm, _lp_arm, _vp_arm

    ledger = pd.DataFrame({"arm": ["lp", "vp/rlm", "vp/flm", "smm/ilm"]})
    assert (_lp_arm(), _vp_arm(ledger)) == ("lp", "vp/flm")          # no vp/ilm: the first VP arm by name
    assert _vp_arm(pd.DataFrame({"arm": ["vp/rlm", "vp/ilm"]})) == "vp/ilm"
    assert _vp_arm(pd.DataFrame({"arm": ["lp", "smm/ilm"]})) is None
    assert [_is_prompt_arm(a) for a in ("lp", "vp/ilm", "full/ilm", "zero_shot")] == [False, True, True, False]


def test_families_own_features_smm_depth_lr_policy_and_dryrun_sparse():
    smm = registry.method_hparams(registry.get("smm"), get_protocol("rlt"))
    resnet, vit, lite, convnext = (get_family(f) for f in ("resnet", "vit", "efficientnet", "convnext"))
    assert [f.smm_layers for f in (resnet, vit, lite, convnext)] == [5, 6, 5, 5]
    assert [f.generator_lr(smm) for f in (resnet, vit, convnext)] == [0.01, 0.001, 0.01]
    assert [f.generator_decay for f in (resnet, vit, lite, convnext)] == [True, False, True, True]
    assert [f.published_sparse for f in (resnet, vit, lite, convnext)] == [True, False, False, False]
    assert {get_spec(n).family_spec.name for n in backbone_names()} == set(FAMILIES)
    with pytest.raises(ReprolibError, match="unknown backbone family 'cnn'; valid choices: resnet, vit"):
        get_family("cnn")


def test_prompt_kinds_own_stored_size_and_augmentation():
    backbone = SimpleNamespace(input_size=224, prompt_side=None, channels=3, mean=(0.5,) * 3, std=(0.5,) * 3,
                               family="resnet")
    target = info("cifar10")
    assert {k: get_kind(k).stored_size(backbone, target) for k in PROMPTS} == \
        {"vp": 32, "narrow": 224, "medium": 224, "full": 224, "smm": 224}
    assert {k: get_kind(k).augments for k in PROMPTS} == \
        {"vp": False, "narrow": True, "medium": True, "full": True, "smm": True}
    assert get_kind("smm").build(backbone, target).layers == 5
    assert get_kind("smm").build(SimpleNamespace(**{**vars(backbone), "family": "vit"}), target).layers == 6
    assert get_kind("vp").build(backbone, target).theta.shape[-1] == 224
    with pytest.raises(ReprolibError, match="unknown prompt method 'pad'; valid choices: vp, narrow, medium, full, smm"):
        get_kind("pad")


def test_legacy_ece_exception_is_the_dataset_entrys_and_unchanged():
    assert info("oxfordpets").legacy_ece_batches == (("vp", 64),)
    for name in ("rlt", "ilm", "smm", "embedded", "smoke"):
        protocol = get_protocol(name)
        assert protocol.to_dict()["legacy_ece_exceptions"] == [["vp", "oxfordpets", 64]]
        assert protocol.legacy_batch_for("vp", "oxfordpets") == 64
        assert protocol.legacy_batch_for("smm", "oxfordpets") == protocol.legacy_batch_for("vp", "dtd") == 128
