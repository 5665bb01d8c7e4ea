"""What the notebooks declare (reads, writes, trains), the run order and staleness the runner takes
from it, and parameter cells whose defaults come from the profile (nothing to drift)."""

from __future__ import annotations

import ast
from pathlib import Path

import jupytext
import pytest

from reprolib import config, paths
from reprolib.config import Profile, load_profile, profile_help, profile_names
from reprolib.errors import ReprolibError
from reprolib.notebooks.plan import NotebookSpec, inputs_hash, plan, read_spec, resource_files
from reprolib.notebooks.runner import LIVE_WIDGETS, RETRAIN, resolve_parameters
from reprolib.notebooks.studies import PROFILE_ENV, chosen_profile

CHECKOUT = Path(__file__).resolve().parents[1]
SOURCES = sorted((CHECKOUT / "notebooks").glob("[0-9][0-9]_*.py"))


@pytest.fixture
def checkout_home(monkeypatch) -> Path:
    """The checkout as the workbook home, so the runner reads its notebooks (tests write under tmp paths)."""
    monkeypatch.setenv(paths.HOME_ENV, str(CHECKOUT))
    return CHECKOUT


def _parameters(source: Path) -> dict:
    """The literal defaults of a notebook's `parameters` cell."""
    for cell in jupytext.read(source).cells:
        if "parameters" in cell.metadata.get("tags", []):
            return {t.id: ast.literal_eval(node.value) for node in ast.parse(cell.source).body
                    if isinstance(node, ast.Assign) for t in node.targets}
    raise AssertionError(f"{source.name} has no parameters cell")


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_parameters_default_to_none_or_the_profiles_value(source: Path, monkeypatch) -> None:
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    parameters = _parameters(source)
    assert parameters.pop("profile") is None, f"{source.name}: the study is chosen outside the cell ($REPROLIB_PROFILE)"
    profile = load_profile(chosen_profile())
    fields = set(Profile.__dataclass_fields__)
    for name, value in parameters.items():
        if name == LIVE_WIDGETS:   # the runner's switch, not a profile value
            assert value is True
            continue
        if name == RETRAIN:        # notebook 02's switch: shipped results stand unless asked
            assert value is False
            continue
        assert name in fields, f"{source.name}: parameter {name} is not a profile key"
        assert value is None or value == getattr(profile, name), f"{source.name}: {name} = {value!r}"


def test_notebook_02s_defaults_build_the_profiles_grid(monkeypatch) -> None:
    from reprolib.sweep.runner import build_grid

    monkeypatch.delenv(PROFILE_ENV, raising=False)   # the default study, embedded
    parameters = _parameters(CHECKOUT / "notebooks" / "02_transfer_sweep.py")
    assert parameters.pop(RETRAIN) is False
    profile = load_profile(chosen_profile())
    grid = build_grid(resolve_parameters(**parameters))
    assert grid == build_grid(profile) and len(grid) > 0
    assert profile.full_data_seeds == [1, 2, 3]
    # The old cell's full_data_seeds = [1] built a smaller grid than `make figures` did.
    drifted = build_grid(resolve_parameters(**{**parameters, "full_data_seeds": [1]}))
    missing = [c for c in grid if c not in drifted]   # the full-data runs of seeds 2 and 3 no subgrid runs
    assert missing and all(c.n_shot == -1 and c.seed in (2, 3) for c in missing)


def test_a_parameter_overrides_and_none_takes_the_profiles_value() -> None:
    profile = resolve_parameters(profile="smoke", seeds=[7], targets=None)
    assert profile.seeds == [7] and profile.targets == load_profile("smoke").targets
    with pytest.raises(ReprolibError, match="profile seeds is str '1'; valid: a list"):
        resolve_parameters(profile="smoke", seeds="1")


def test_every_notebook_declares_what_it_reads_and_writes(checkout_home: Path) -> None:
    specs = [read_spec(s.stem) for s in SOURCES]
    assert all(spec.writes for spec in specs)
    assert [s.name for s in specs if s.trains] == ["01_upstream_and_tickets", "02_transfer_sweep", "08_reprogrammer"]
    by_name = {s.name: s for s in specs}
    assert "tickets" in by_name["01_upstream_and_tickets"].writes and "tickets" in by_name["02_transfer_sweep"].reads
    assert {"ledger", "tickets_table"} <= set(by_name["02_transfer_sweep"].writes)
    order = [s.name for s in plan(specs)]
    assert order == sorted(order)   # the numbers happen to agree with the declarations
    writers = {r: s.name for s in specs for r in s.writes}
    for spec in specs:
        for resource in spec.reads:
            assert resource not in writers or order.index(writers[resource]) < order.index(spec.name)


def test_the_order_comes_from_the_declarations_not_the_numbers() -> None:
    specs = [NotebookSpec("01_draw", reads=["ledger"], writes=["figures:a"]),
             NotebookSpec("02_sweep", reads=["tickets"], writes=["ledger"]),
             NotebookSpec("03_tickets", writes=["tickets"]),
             NotebookSpec("04_alone", writes=["figures:b"])]
    assert [s.name for s in plan(specs)] == ["03_tickets", "02_sweep", "01_draw", "04_alone"]
    with pytest.raises(ReprolibError, match="notebooks 01_draw and 05_twin both write figures:a; valid: one writer"):
        plan(specs + [NotebookSpec("05_twin", writes=["figures:a"])])
    loop = specs[:2] + [NotebookSpec("03_tickets", reads=["figures:a"], writes=["tickets"])]
    with pytest.raises(ReprolibError, match="notebooks 01_draw, 02_sweep, 03_tickets read each other's outputs"):
        plan(loop)


def test_a_bad_declaration_is_one_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(paths.HOME_ENV, str(tmp_path))
    (tmp_path / "notebooks").mkdir()
    header = "# ---\n# jupyter:\n#   reprolib:\n#     reads:\n#     - {}\n# ---\n\n# %%\nx = 1\n"
    (tmp_path / "notebooks" / "01_x.py").write_text(header.format("legder"))
    with pytest.raises(ReprolibError, match="unknown resource of notebook 01_x 'legder'; valid choices: .*ledger"):
        read_spec("01_x")
    (tmp_path / "notebooks" / "01_x.py").write_text(header.format("figures:a/b"))
    with pytest.raises(ReprolibError, match="notebook 01_x declares 'figures:a/b'"):
        read_spec("01_x")
    (tmp_path / "notebooks" / "01_x.py").write_text("# %%\nx = 1\n")
    assert read_spec("01_x") == NotebookSpec("01_x")   # declares nothing: reads and writes nothing


def test_a_deleted_output_or_a_changed_input_makes_a_copy_stale(tmp_path: Path, checkout_home: Path) -> None:
    profile = load_profile("smoke", artifacts=str(tmp_path / "a"), figures=str(tmp_path / "f"))
    yaml_file = paths.profile_file("smoke")
    spec = read_spec("04_few_shot")
    figures = profile.path("figures")
    figures.mkdir(parents=True)
    for suffix in (".png", ".csv", ".txt"):
        (figures / f"few_shot{suffix}").write_text("x")
    assert [f.name for f in resource_files("figures:few_shot", profile)] == ["few_shot.csv", "few_shot.png"]
    made = inputs_hash(spec, yaml_file, profile)
    (figures / "few_shot.txt").unlink()   # not an output: nothing changes
    assert inputs_hash(spec, yaml_file, profile) == made
    (figures / "few_shot.png").unlink()
    assert inputs_hash(spec, yaml_file, profile) != made
    gone = inputs_hash(spec, yaml_file, profile)
    ledger = paths.ledger_file(profile.path("artifacts"))
    ledger.parent.mkdir(parents=True)
    ledger.write_text("id\n")
    assert inputs_hash(spec, yaml_file, profile) != gone


def test_the_inputs_hash_covers_what_ships_not_the_run_records(tmp_path: Path, checkout_home: Path) -> None:
    """Notebook 11 reads the run records, which a clone does not have: its hash is the same with and
    without them (the ledger, which ships and is hashed, names every finished run), so a fresh clone's
    `make figures` finds its executed copy up to date."""
    profile = load_profile("smoke", artifacts=str(tmp_path / "a"), figures=str(tmp_path / "f"))
    yaml_file = paths.profile_file("smoke")
    spec = read_spec("11_explorer")
    assert "run_records" in spec.reads
    ledger = paths.ledger_file(profile.path("artifacts"))
    ledger.parent.mkdir(parents=True)
    ledger.write_text("id\nabc\n")
    clone = inputs_hash(spec, yaml_file, profile)
    runs = paths.runs_dir(profile.path("artifacts"))
    runs.mkdir()
    for name in ("abc.json", "abc.npz", "abc.scores.npz", "old.bad.json"):
        (runs / name).write_text("x")
    assert inputs_hash(spec, yaml_file, profile) == clone
    ledger.write_text("id\nabc\ndef\n")   # what the records say reaches the hash through the ledger
    assert inputs_hash(spec, yaml_file, profile) != clone


def test_profiles_are_the_yaml_files_found_when_asked(tmp_path: Path, monkeypatch) -> None:
    for name in ("smoke", "embedded"):
        (tmp_path / f"{name}.yaml").write_text((config.PROFILE_DIR / f"{name}.yaml").read_text())
    (tmp_path / "zeta.yaml").write_text("profile: zeta\n")
    monkeypatch.setattr(config, "PROFILE_DIR", tmp_path)
    monkeypatch.setenv(config.PROFILES_ENV, "")
    assert profile_names() == ["smoke", "embedded", "zeta"]
    assert profile_help() == "smoke | embedded | zeta, or the path of your own profile YAML"


NOTEBOOK = '''# ---
# jupyter:
#   reprolib:
#     reads:
#     - ledger
#     writes:
#     - figures:seen
# ---

# %% tags=["parameters"]
profile = "smoke"
seeds = None

# %%
from reprolib.notebooks.runner import setup

P = setup(profile=profile, seeds=seeds)
print(P.profile, P.seeds, P.path("figures").name)
'''


@pytest.mark.slow
def test_a_users_profile_file_runs_the_notebooks(tmp_path: Path, monkeypatch) -> None:
    """`reprolib notebooks --profile PATH.yaml`: the kernel loads the user's file; seeds come from it."""
    import nbformat

    from reprolib.notebooks.runner import run_notebooks

    home = tmp_path / "home"
    (home / "notebooks").mkdir(parents=True)
    (home / ".reprolib-home").touch()
    (home / "notebooks" / "01_seen.py").write_text(NOTEBOOK)
    monkeypatch.setenv(paths.HOME_ENV, str(home))
    monkeypatch.setenv(config.PROFILES_ENV, "")
    mine = tmp_path / "mine.yaml"
    mine.write_text((config.PROFILE_DIR / "smoke.yaml").read_text().replace("profile: smoke", "profile: mine")
                    .replace("figures: figures/smoke", "figures: figures/mine").replace("seeds: [1]", "seeds: [5]", 1))
    assert load_profile(str(mine)).seeds == [5]
    out = tmp_path / "out"
    assert run_notebooks(str(mine), out, verbose=False)["01_seen"][0] == "executed"
    executed = nbformat.read(out / "01_seen.ipynb", as_version=4)
    assert executed.metadata["papermill"]["parameters"] == {"profile": str(mine)}
    assert executed.cells[-1].outputs[0]["text"] == "mine [5] mine\n"
    assert run_notebooks(str(mine), out, verbose=False)["01_seen"][0] == "unchanged"


def test_a_declaration_of_the_wrong_shape_is_one_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(paths.HOME_ENV, str(tmp_path))
    (tmp_path / "notebooks").mkdir()
    source = tmp_path / "notebooks" / "01_x.py"
    source.write_text("# ---\n# jupyter:\n#   reprolib:\n#     trains: yes please\n# ---\n\n# %%\nx = 1\n")
    with pytest.raises(ReprolibError, match="notebook 01_x: notebook header trains is str 'yes please'; valid: true or false"):
        read_spec("01_x")
    source.write_text("# ---\n# jupyter:\n#   reprolib:\n#     name: y\n# ---\n\n# %%\nx = 1\n")
    with pytest.raises(ReprolibError, match="unknown key of notebook 01_x's reprolib header 'name'; valid choices: "
                                            "reads, writes, trains"):
        read_spec("01_x")


def test_a_forced_run_on_shipped_results_switches_notebook_02_to_retrain() -> None:
    """`make figures FORCE=1` retrains a study whose results ship: the runner injects RETRAIN into
    the notebooks that declare it, and only when forced on shipped results."""
    from reprolib.notebooks.runner import notebook_parameters

    declared = {"profile", RETRAIN, LIVE_WIDGETS}
    assert notebook_parameters(declared, "embedded", retrain=True) == {"profile": "embedded", LIVE_WIDGETS: False,
                                                                      RETRAIN: True}
    assert RETRAIN not in notebook_parameters(declared, "embedded")
    assert notebook_parameters({"profile"}, "embedded", retrain=True) == {"profile": "embedded"}

