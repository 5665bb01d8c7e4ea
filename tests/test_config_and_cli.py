"""Profiles are typed; bad input gives one line on stderr and a non-zero exit."""

import subprocess
import sys

import pytest

from reprolib.config import load_profile, profile_names, validate
from reprolib.errors import ReprolibError, check_choice, check_type


@pytest.mark.parametrize("name", profile_names())
def test_every_profile_file_validates(name):
    profile = load_profile(name)
    assert profile.profile == name
    assert profile.targets and profile.methods and profile.seeds


def test_unknown_key_and_wrong_type_are_refused():
    with pytest.raises(ReprolibError, match="unknown profile key 'sedes'.*seeds"):
        validate({"sedes": [1]})
    with pytest.raises(ReprolibError, match="seeds is str '\\[1, 2\\]'; valid: a list"):
        validate({"seeds": "[1, 2]"})  # papermill -p injects strings: caught here
    with pytest.raises(ReprolibError, match="baseline_level is bool True; valid: an integer"):
        validate({"baseline_level": True})
    with pytest.raises(ReprolibError, match="unknown profile 'fast'; valid choices: smoke, embedded, paper"):
        load_profile("fast")


def test_error_helpers_make_one_line():
    with pytest.raises(ReprolibError) as err:
        check_choice("method", "vpp", ["lp", "vp"])
    assert str(err.value) == "unknown method 'vpp'; valid choices: lp, vp"
    with pytest.raises(ReprolibError):
        check_type("n_shot", 1.5, int)
    assert "\n" not in str(ReprolibError("two\nlines"))


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "reprolib", *args], capture_output=True, text=True)


def test_cli_unknown_command_is_one_line_and_exit_2():
    result = _cli("trian")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "unknown command 'trian'; valid choices: data, upstream, tickets" in result.stderr


def test_cli_help_lists_commands():
    result = _cli("--help")
    assert result.returncode == 0 and "transfer" in result.stdout and "sweep" in result.stdout


def test_bad_flag_value_is_one_line_naming_the_choices():
    result = _cli("transfer", "--dataset", "digits", "--method", "foo")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr          # no usage block
    assert "invalid choice: 'foo'" in result.stderr and "'lp', 'vp', 'smm'" in result.stderr


def test_compile_is_a_cuda_only_profile_switch_hashed_only_when_on(monkeypatch):
    """`compile: true` joins a run's identity only where it acts (CUDA); off, ids are as before."""
    import dataclasses

    from reprolib.config import load_profile
    from reprolib.transfer import TransferConfig
    from reprolib.transfer import run as run_module

    # the network's fingerprint is not what this test is about (no tickets need to exist)
    monkeypatch.setattr(run_module, "network_fingerprint", lambda *args: {"provenance": "dense", "digest": "0"})
    cfg = TransferConfig(profile="smoke", target="digits", method="lp", device="cpu")
    plain, _, _ = run_module.resolve(cfg)
    compiled = dataclasses.replace(load_profile("smoke"), compile=True)
    monkeypatch.setattr(run_module, "load_profile", lambda name: compiled)
    on_cpu, _, _ = run_module.resolve(cfg)
    assert "compile" not in plain and on_cpu == plain
    monkeypatch.setattr(run_module, "resolve_device", lambda device: "cuda")
    on_cuda, _, _ = run_module.resolve(cfg)
    assert on_cuda["compile"] is True
