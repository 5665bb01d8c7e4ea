"""Bad input on every command: one line naming the value and the valid choices, exit 2, nothing left behind.

The CLI's main() runs in-process (no subprocess: fast); each case checks the exit status, that
stderr is exactly one `error: ...` line, and that the workbook folder holds the same files after.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from reprolib import paths
from reprolib.cli import main


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty workbook home (REPROLIB_HOME) holding one plain file, `afile`."""
    monkeypatch.setenv("REPROLIB_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("not a folder\n")
    return tmp_path


def one_line_error(argv: list[str], capsys, home: Path) -> str:
    """Run the CLI; assert exit 2, one stderr line, nothing new under `home`; return the line."""
    before = files_under(home)
    code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert files_under(home) == before
    return lines[0]


TRANSFER = ["transfer", "--profile", "smoke", "--dataset", "digits", "--no_progress"]


@pytest.mark.parametrize("argv, expected", [
    (TRANSFER + ["--results_path", "afile"], "--results_path afile is a file"),
    (TRANSFER + ["--results_path", "afile/runs"], "lies under the file afile"),
    (TRANSFER + ["--n_shot", str(2 ** 100)], "n_shot must be -1 (all) or 1 .. 2**31-1"),
    (TRANSFER + ["--seed", "1180591620717411303424"], "seed must be 0 .. 2**63-1"),
    (TRANSFER + ["--method", "vp", "--label_map", "none"], "method 'vp' needs a label map, got 'none'; valid choices: ilm"),
    (TRANSFER + ["--epochs", "0"], "epochs must be 1 .. 2**31-1"),
    (["data", "--prepare", "--root", "afile"], "--root afile is a file"),
    (["notebooks", "--profile", "smoke", "--out", "afile"], "--out afile is a file"),
    (["notebooks", "--profile", "smoke", "--out", "afile/x"], "--out afile/x lies under the file"),
    (["ledger", "--profile", "smoke", "--artifacts", "/nonexistent/artifacts"], "is not a folder; valid"),
    (["tickets", "fetch", "str-resnet50-81", "--profile", "smoke", "--url", "http://example.org/t.pth"],
     "scheme 'http'; valid choices: https://, file://"),
    (["tickets", "fetch", "str-resnet50-81", "--profile", "smoke", "--url", "ftp://example.org/t.pth"], "scheme 'ftp'"),
    (["tickets", "fetch", "str-resnet50-81", "--profile", "smoke", "--url", "data:,abc"], "scheme '(none)'"),
])
def test_bad_command_lines(argv, expected, capsys, home):
    assert expected in one_line_error(argv, capsys, home)


def test_a_read_only_results_path_is_refused_before_training(capsys, home, monkeypatch):
    (home / "ro").mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **k: False if Path(p).name == "ro" else real_access(p, mode, **k))
    line = one_line_error(TRANSFER + ["--results_path", "ro/runs"], capsys, home)
    assert "ro/runs is not writable" in line and "valid: a folder you can write" in line


@pytest.mark.parametrize("text, expected", [
    ("profile: smoke\nlevels: [0, 2\n", "is not valid YAML at line"),
    ("profile: smoke\n\tlevels: [0]\n", "is not valid YAML at line 2"),
    ("- profile\n- smoke\n", "holds a YAML list; valid: a mapping of profile keys"),
    ("profile: smoke\nbackbone: small_resnet\nsource: fashion_mnist\nlevels: [-1]\n", "ticket level -1 is negative"),
    ("profile: smoke\nbackbone: small_resnet\nsource: fashion_mnist\nn_shots: [0]\n", "n_shots value 0 is invalid"),
    ("profile: embedded\nbackbone: small_resnet\nsource: fashion_mnist\n", "names profile 'embedded'; valid choices: 'smoke'"),
    ("profile: smoke\nbackbone: small_resnet\nsource: fashion_mnist\ndata_integrity: none\n", "unknown data_integrity 'none'"),
])
def test_bad_profile_files(text, expected, capsys, home, monkeypatch):
    bad = home / "smoke.yaml"
    bad.write_text(text)
    monkeypatch.setattr(paths, "profile_file", lambda name: bad)
    assert expected in one_line_error(["ledger", "--profile", "smoke"], capsys, home)


@pytest.mark.parametrize("content, expected", [
    (b"\x00\x01\x02binary\xff\xfe", "is not a text file"),
    (b"id,accuracy\nabc,0.5\nde", "ends mid-line (truncated?)"),
    (b"", "is empty"),
    (b'id,accuracy\nabc,"0.5\n', "is not a readable CSV"),
    (b"x,y\n1,2\n", "has no 'id' column"),
])
def test_compare_refuses_what_is_not_a_ledger(content, expected, capsys, home):
    (home / "good.csv").write_text("id,accuracy\nabc,0.5\n")
    (home / "bad.csv").write_bytes(content)
    assert expected in one_line_error(["compare", "good.csv", "bad.csv"], capsys, home)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_tickets_import_takes_file_after_options_and_refuses_a_pickle_in_one_line(capsys, home):
    (home / "evil.pkl").write_bytes(pickle.dumps({"conv1.weight": _Evil()}))
    line = one_line_error(["tickets", "import", "--profile", "smoke", "evil.pkl", "--name", "x"], capsys, home)
    assert line.startswith("error: cannot read evil.pkl") and "unrecognized" not in line
    assert not (home / "PWNED").exists()


def test_a_download_that_does_not_import_is_removed(capsys, home):
    (home / "junk.pth").write_text("not a checkpoint\n")
    url = (home / "junk.pth").as_uri()
    line = one_line_error(["tickets", "fetch", "str-resnet50-81", "--profile", "smoke", "--url", url], capsys, home)
    assert "downloads/str-resnet50-81.pth: not a PyTorch checkpoint" in line
    assert not list(home.rglob("downloads/*"))


def test_a_shipped_ledger_without_its_run_records_is_not_rebuilt_as_empty(capsys, home):
    """A fresh clone holds the studies' ledger.csv but not their runs: `ledger` must keep it."""
    artifacts = home / "shipped"
    artifacts.mkdir()
    (artifacts / "ledger.csv").write_text("id,accuracy\nabc,0.5\n")
    line = one_line_error(["ledger", "--profile", "smoke", "--artifacts", str(artifacts)], capsys, home)
    assert "is kept as it is" in line and "run the sweep first" in line
    assert (artifacts / "ledger.csv").read_text() == "id,accuracy\nabc,0.5\n"
