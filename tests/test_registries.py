"""The registries own every fact: methods, arms, prompt kinds, label maps, backbones and their
families, the Reprogrammer study's methods.

No module of reprolib/ or notebooks/ outside the registry modules holds a registered name where
behaviour is decided (an `ast` walk that sees every form a name can be compared or keyed in), and
each registry's entries are checked one by one, parametrised over every entry, so a new entry is
tested without an edit here. What must not move when an entry is added (the shipped studies'
grids, arms, numbers) is pinned in tests/golden/shipped_studies.json (tests/test_shipped_studies.py).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from reprolib.data.catalog import info
from reprolib.errors import ReprolibError
from reprolib.models.registry import FAMILIES, get_family, get_spec
from reprolib.models.registry import names as backbone_names
from reprolib.prompts import PROMPTS, get_kind
from reprolib.prompts.kinds import AUGMENTATION
from reprolib.protocols import get_protocol
from reprolib.protocols import names as presets
from reprolib.reprogrammer.methods import METHODS as REPROGRAMMER_METHODS
from reprolib.reprogrammer.methods import get_method as reprogrammer_method
from reprolib.study.ledger import arm_name
from reprolib.transfer import registry
from reprolib.transfer.labelmap import LABEL_MAPS

CHECKOUT = Path(__file__).resolve().parent.parent
SCANNED = ("reprolib", "notebooks")   # the library and the notebooks' sources
# The modules whose job is to say which name has which fact.
REGISTRY_MODULES = {Path(p) for p in ("reprolib/transfer/registry.py", "reprolib/models/registry.py",
                                      "reprolib/prompts/kinds.py", "reprolib/transfer/labelmap.py",
                                      "reprolib/reprogrammer/methods.py",
                                      # the datasets' entries: OxfordPets' legacy-ECE exception names VP
                                      "reprolib/data/catalog.py")}
# Other registries' own names that spell a registered one, in the module that registers them.
OTHER_REGISTRIES = {
    Path("reprolib/protocols.py"): {"ilm", "smm"},   # the presets named after ILM-VP's and SMM's recipes
    Path("reprolib/cli.py"): {"reprogrammer"},        # the `reprogrammer` command
    Path("reprolib/study/published.py"): {"smm"},     # the SMM paper's table
}
NAMED_BY_REGISTRIES = {*registry.names(), *PROMPTS, *FAMILIES, *(arm.name for arm in registry.arms()),
                       *LABEL_MAPS, *backbone_names(), *REPROGRAMMER_METHODS}
CALLS = ("startswith", "endswith", "isin", "eq", "ne", "find", "rfind", "index", "rindex", "contains")


def _constants(node: ast.AST | None) -> list:
    """The constants a comparison or call argument holds: a literal, or a tuple / list / set of them."""
    if isinstance(node, ast.Constant):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [e.value for e in node.elts if isinstance(e, ast.Constant)]
    return []


def _strings_within(node: ast.AST) -> list:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _is_constant_name(target: ast.AST) -> bool:
    return isinstance(target, ast.Name) and target.id.isupper()


def _names_a_registry_entry(value) -> bool:
    """A registry name, an arm of one ('vp/ilm'), an arm prefix ('vp/') or suffix ('/ilm')."""
    return isinstance(value, str) and (value in NAMED_BY_REGISTRIES or "/" in value and (
        value.partition("/")[0] in registry.names() or value.startswith("/") and value[1:] in LABEL_MAPS))


def _query_words(node: ast.Call) -> list[str]:
    """The words of a pandas `.query("method == 'vp'")` string."""
    return [w for arg in node.args for text in _constants(arg) if isinstance(text, str)
            for w in re.findall(r"[\w/]+", text)]


def _call_values(node: ast.Call) -> tuple[str, list] | None:
    """(form, constants) of a name-testing call: .startswith / .endswith / .isin / .eq / .ne /
    .find / .index / .str.contains and the like, or a .query string."""
    if not isinstance(node.func, ast.Attribute):
        return None
    if node.func.attr == "query":
        return "query", _query_words(node)
    if node.func.attr in CALLS:
        return node.func.attr, [c for arg in node.args for c in _constants(arg)]
    return None


def _uses(tree: ast.AST):
    """(line, form, constants) of every place a name can decide behaviour: comparisons (==, !=, in,
    not in, is), name-testing calls, named constants (UPPER_CASE = ...), dict keys and subscripts,
    `match` cases and function defaults."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            yield node.lineno, "compare", [c for side in (node.left, *node.comparators) for c in _constants(side)]
        elif isinstance(node, ast.Call) and (found := _call_values(node)):
            yield node.lineno, *found
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None and \
                any(_is_constant_name(t) for t in (node.targets if isinstance(node, ast.Assign) else [node.target])):
            yield node.lineno, "named constant", _strings_within(node.value)
        elif isinstance(node, ast.Dict):
            yield node.lineno, "dict key", [c for key in node.keys if key is not None for c in _constants(key)]
        elif isinstance(node, ast.Subscript):
            yield node.lineno, "key", _constants(node.slice)
        elif isinstance(node, ast.match_case):
            yield node.pattern.lineno, "match", [n.value.value for n in ast.walk(node.pattern)
                                                 if isinstance(n, ast.MatchValue) and isinstance(n.value, ast.Constant)]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            defaults = [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]
            yield node.lineno, "default", [c for d in defaults for c in _constants(d)]


def _offenders(relative: Path, source: str) -> list[str]:
    allowed = OTHER_REGISTRIES.get(relative, set())
    return [f"{relative}:{line}: {form} {value!r}" for line, form, values in _uses(ast.parse(source))
            for value in values if _names_a_registry_entry(value) and value not in allowed]


def test_nothing_outside_the_registries_holds_a_registered_name():
    offenders = []
    for root in SCANNED:
        for path in sorted((CHECKOUT / root).rglob("*.py")):
            relative = path.relative_to(CHECKOUT)
            if relative not in REGISTRY_MODULES:
                offenders += _offenders(relative, path.read_text())
    assert offenders == []


def test_the_scan_walks_the_notebooks_too():
    scanned = {p.relative_to(CHECKOUT).parts[0] for root in SCANNED for p in (CHECKOUT / root).rglob("*.py")}
    assert scanned == set(SCANNED) and any((CHECKOUT / "notebooks").glob("[0-9][0-9]_*.py"))


def test_the_scan_sees_each_form():
    source = '''
a == "vp"
b != "resnet"
c in ("smm", 1)
d.startswith("vp/")
e.isin(["lp"])
f == "vp/ilm"
g == "cifar10"
h.startswith("vpx")
i.eq("flm")
j.query("method == 'smm' and n_shot > 1")
k.str.contains("narrow")
DEFAULT_METHOD = "full"
m = {"rlm": 1}
n["medium"]
match o:
    case "finetune":
        pass
p.find("vit")
def q(method="resnet18"):
    pass
r.endswith("/ilm")
s not in {"lp"}
'''
    found = [(line, value) for line, _, values in _uses(ast.parse(source)) for value in values
             if _names_a_registry_entry(value)]
    assert sorted(found) == [(2, "vp"), (3, "resnet"), (4, "smm"), (5, "vp/"), (6, "lp"), (7, "vp/ilm"),
                             (10, "flm"), (11, "smm"), (12, "narrow"), (13, "full"), (14, "rlm"), (15, "medium"),
                             (17, "finetune"), (19, "vit"), (20, "resnet18"), (22, "/ilm"), (23, "lp")]
    # another registry's own name, in its own module, is that registry's business
    assert _offenders(Path("reprolib/protocols.py"), 'PRESETS = {"ilm": 1}\n') == []
    assert _offenders(Path("reprolib/study/x.py"), 'PRESETS = {"ilm": 1}\n') != []


# ---- methods ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", registry.names())
def test_every_method_states_its_capabilities_and_arms(name):
    spec = registry.get(name)
    assert spec.name == name and spec.summary
    assert spec.input_prompt == spec.needs_label_map == spec.groupable == (not spec.shared_features)
    assert spec.role is None or spec.role in registry.ROLES
    assert spec.arms and all(arm.method == name for arm in spec.arms)
    assert all((arm.label_map is None) != spec.needs_label_map for arm in spec.arms)
    assert all(arm.label_map is None or arm.label_map in LABEL_MAPS for arm in spec.arms)
    assert (name in registry.prompt_methods()) == spec.needs_label_map
    assert all(spec.applies_to(family) for family in (spec.families or FAMILIES))
    for preset in presets():   # its numbers under every preset: the names its entry declares
        assert tuple(registry.method_hparams(spec, get_protocol(preset))) == spec.hparams.names()
    if spec.input_prompt:      # a prompt method is its prompt kind's entry
        kind = get_kind(name)
        assert (spec.summary, spec.arms, spec.role, spec.hparams) == (kind.summary, kind.arms, kind.role, kind.hparams)


def test_each_role_has_one_method():
    assert [registry.role_method(role).role for role in registry.ROLES] == list(registry.ROLES)
    with pytest.raises(ReprolibError, match="unknown method role 'head'; valid choices: " + ", ".join(registry.ROLES)):
        registry.role_method("head")


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


# ---- arms -------------------------------------------------------------------------------

@pytest.mark.parametrize("arm", registry.arms(), ids=lambda arm: arm.name)
def test_every_arm_is_drawn_and_named_from_its_entry(arm):
    from reprolib.plots.accuracy import SMM_PROMPTS
    from reprolib.plots.common import ARM_ORDER, PALETTE, arm_label

    assert arm.name == arm_name(arm.method, arm.label_map) and registry.method_of_arm(arm.name).name == arm.method
    assert PALETTE[arm.name] == arm.color and arm_label(arm.name) == arm.label
    assert ARM_ORDER.index(arm.name) == [a.name for a in registry.arms()].index(arm.name)
    assert (arm.short is None) == (arm.panel is None)
    assert SMM_PROMPTS.get(arm.name) == arm.short
    assert registry.has_role(arm.name) == (registry.get(arm.method).role is not None)


def test_arms_are_distinct_and_unknown_arms_fall_back():
    from reprolib.plots.accuracy import SMM_PROMPTS
    from reprolib.plots.common import arm_label

    arms = registry.arms()
    for field in ("name", "label", "color"):
        assert len({getattr(arm, field) for arm in arms}) == len(arms), field
    drawn = [arm for arm in arms if arm.short is not None]
    assert len({arm.short for arm in drawn}) == len({arm.panel for arm in drawn}) == len(drawn)
    assert list(SMM_PROMPTS) == [arm.name for arm in sorted(drawn, key=lambda arm: arm.panel)]
    assert arm_label("vp/flm_grey") == "vp/flm_grey"   # registered method, unregistered arm: its name
    assert registry.method_of_arm("vp/flm_grey").name == "vp" and registry.method_of_arm("zero_shot") is None
    assert not registry.has_role("zero_shot")


def test_claims_pick_the_registry_arms():
    import pandas as pd

    from reprolib.study.claim_tests import is_prompt_arm as _is_prompt_arm
    from reprolib.study.claim_tests import lp_arm as _lp_arm
    from reprolib.study.claim_tests import vp_arm as _vp_arm

    ledger = pd.DataFrame({"arm": ["lp", "vp/rlm", "vp/flm", "smm/ilm"]})
    assert (_lp_arm(), _vp_arm(ledger)) == ("lp", "vp/flm")          # no vp/ilm: the first VP arm by name
    assert _vp_arm(pd.DataFrame({"arm": ["vp/rlm", "vp/ilm"]})) == "vp/ilm"
    assert _vp_arm(pd.DataFrame({"arm": ["lp", "smm/ilm"]})) is None
    assert [_is_prompt_arm(a) for a in ("lp", "vp/ilm", "full/ilm", "zero_shot")] == [False, True, True, False]


# ---- backbone families ------------------------------------------------------------------

@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_owns_features_smm_depth_and_generator_rate(name):
    family = get_family(name)
    smm = registry.method_hparams(registry.get("smm"), get_protocol("rlt"))
    assert family.name == name and callable(family.features) and family.smm_layers in (5, 6)
    assert family.generator_lr(smm) in (smm["generator_lr"], smm["generator_lr_vit"])
    assert isinstance(family.generator_decay, bool) and isinstance(family.published_sparse, bool)


def test_family_values_are_the_papers():
    smm = registry.method_hparams(registry.get("smm"), get_protocol("rlt"))
    known = {name: get_family(name) for name in ("resnet", "vit", "efficientnet", "convnext")}
    assert {n: f.smm_layers for n, f in known.items()} == {"resnet": 5, "vit": 6, "efficientnet": 5, "convnext": 5}
    assert {n: f.generator_lr(smm) for n, f in known.items()} == \
        {"resnet": 0.01, "vit": 0.001, "efficientnet": 0.01, "convnext": 0.01}
    assert [n for n, f in known.items() if not f.generator_decay] == ["vit"]
    assert [n for n, f in known.items() if f.published_sparse] == ["resnet"]
    assert {get_spec(n).family for n in backbone_names()} <= set(FAMILIES)
    with pytest.raises(ReprolibError, match="unknown backbone family 'cnn'; valid choices: " + ", ".join(FAMILIES)):
        get_family("cnn")


# ---- prompt kinds -----------------------------------------------------------------------

BACKBONE = SimpleNamespace(input_size=224, prompt_side=None, channels=3, mean=(0.5,) * 3, std=(0.5,) * 3,
                           family="resnet")


@pytest.mark.parametrize("name", PROMPTS)
def test_every_prompt_kind_builds_at_its_stored_size_with_its_numbers(name):
    import torch

    kind, target = get_kind(name), info("cifar10")
    side = kind.stored_size(BACKBONE, target)
    assert kind.name == name and 0 < side <= BACKBONE.input_size
    prompt = kind.build(BACKBONE, target)
    x = torch.rand(2, 3, side, side)
    assert prompt(x).shape == prompt.unprompted(x).shape == (2, 3, 224, 224)
    assert kind.augments == (set(AUGMENTATION.names()) <= set(kind.hparams.names()))
    assert "prompt_lr" in kind.hparams.names() and not set(kind.settings) & set(kind.options)
    assert registry.get(name).load_side(BACKBONE, target, get_protocol("rlt"), "test") == side


def test_prompt_kind_values():
    target = info("cifar10")
    assert get_kind("vp").stored_size(BACKBONE, target) == 32 and not get_kind("vp").augments
    assert all(get_kind(k).stored_size(BACKBONE, target) == 224 and get_kind(k).augments
               for k in ("smm", "narrow", "medium", "full"))
    assert get_kind("smm").build(BACKBONE, target).layers == 5
    assert get_kind("smm").build(SimpleNamespace(**{**vars(BACKBONE), "family": "vit"}), target).layers == 6
    assert get_kind("vp").build(BACKBONE, target).theta.shape[-1] == 224
    assert [get_kind(k).settings["frame_width_at_224"] for k in ("narrow", "medium", "full")] == [28, 56, None]
    with pytest.raises(ReprolibError, match="unknown prompt method 'pad'; valid choices: " + ", ".join(PROMPTS)):
        get_kind("pad")


def test_legacy_ece_exception_is_the_dataset_entrys_and_unchanged():
    assert info("oxfordpets").legacy_ece_batches == (("vp", 64),)
    for name in ("rlt", "ilm", "smm", "embedded", "smoke"):
        protocol = get_protocol(name)
        assert protocol.to_dict()["legacy_ece_exceptions"] == [["vp", "oxfordpets", 64]]
        assert protocol.legacy_batch_for("vp", "oxfordpets") == 64
        assert protocol.legacy_batch_for("smm", "oxfordpets") == protocol.legacy_batch_for("vp", "dtd") == 128


# ---- the Reprogrammer study's methods -----------------------------------------------------

@pytest.mark.parametrize("name", REPROGRAMMER_METHODS)
def test_every_reprogrammer_method_states_how_it_runs(name):
    from reprolib.plots.reprogrammer import method_label

    method = reprogrammer_method(name)
    assert method.name == name and method.label and callable(method.run)
    assert not (method.sweeps_alpha and method.fixed_alpha is not None)   # one alpha rule
    assert method_label(name, float("nan")) == method.label
    sharing = [m for m in REPROGRAMMER_METHODS if reprogrammer_method(m).run is method.run]
    assert sharing == [name] or all(reprogrammer_method(m).sweeps_alpha or reprogrammer_method(m).fixed_alpha
                                    is not None for m in sharing)   # a shared run mixes per alpha


def test_reprogrammer_method_values():
    assert [m for m in REPROGRAMMER_METHODS if reprogrammer_method(m).sweeps_alpha] == ["residual_reprogrammer"]
    assert [m for m in REPROGRAMMER_METHODS if reprogrammer_method(m).large_encoder_needs_gpu] == ["finetune"]
    assert reprogrammer_method("reprogrammer").fixed_alpha == 0.0
    assert reprogrammer_method("reprogrammer").run is reprogrammer_method("residual_reprogrammer").run
    with pytest.raises(ReprolibError, match="unknown reprogrammer method 'clip'"):
        reprogrammer_method("clip")
