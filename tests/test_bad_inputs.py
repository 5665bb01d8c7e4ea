"""Bad input on every command: one line naming the value and the valid choices, exit 2, nothing left behind.

The CLI's main() runs in-process (no subprocess: fast); each case checks the exit status, that
stderr is exactly one `error: ...` line, that nothing was printed before it (no grid, no table),
and that the workbook folder holds the same files after. The cases are the ones a newcomer tried
(command-line values, profile files, unsafe data and weights files, a locked folder) and more.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest

from reprolib import paths
from reprolib.cli import main


def files_under(root: Path) -> dict[str, int]:
    """Every path under `root` with its size (folders: -1): what was written shows as a difference."""
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1) for p in root.rglob("*")}


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty workbook home (REPROLIB_HOME) holding one plain file, `afile`."""
    monkeypatch.setenv("REPROLIB_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("not a folder\n")
    return tmp_path


def one_line_error(argv: list[str], capsys, home: Path) -> str:
    """Run the CLI; assert exit 2, one stderr line, no stdout, nothing new under `home`; return the line."""
    before = files_under(home)
    code = main(argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert out == "", out
    assert files_under(home) == before
    assert not (home / "PWNED").exists()
    return lines[0]


class _Evil:
    """A pickle payload: unpickling it would run a shell command that writes a file."""

    def __reduce__(self):
        return (os.system, ("touch PWNED",))


TRANSFER = ["transfer", "--profile", "smoke", "--dataset", "digits", "--no_progress"]
SWEEP = ["sweep", "--profile", "smoke"]
SLURM_DRY = ["sweep", "--profile", "smoke", "--dry-run", "--executor", "slurm"]


@pytest.mark.parametrize("argv, expected", [
    # transfer: where records go, and every value the public scripts' flags take
    (TRANSFER + ["--results_path", "afile"], "--results_path afile is a file"),
    (TRANSFER + ["--results_path", "afile/runs"], "lies under the file afile"),
    (TRANSFER + ["--n_shot", str(2 ** 100)], "--n_shot: n_shots value 1267650600228229401496703205376 is invalid"),
    (TRANSFER + ["--n_shot", "0"], "--n_shot: n_shots value 0 is invalid; valid choices: -1 (all) or 1 .. 2**31-1"),
    (TRANSFER + ["--seed", "1180591620717411303424"], "--seed: seed 1180591620717411303424 is out of range; valid: 0 .."),
    (TRANSFER + ["--seed", "-1"], "--seed: seed -1 is out of range"),
    (TRANSFER + ["--seed", "1.5"], "--seed is '1.5'; valid: an integer"),
    (TRANSFER + ["--method", "vp", "--label_map", "none"], "method 'vp' needs a label map, got 'none'; valid choices: ilm"),
    (TRANSFER + ["--method", "lp", "--label_map", "ilm"], "method 'lp' takes no label map, got 'ilm'; valid choices: none"),
    (TRANSFER + ["--epochs", "0"], "--epochs is '0'; valid: >= 1"),
    (TRANSFER + ["--epochs", "nan"], "--epochs is 'nan'; valid: an integer"),
    (TRANSFER + ["--batch_size", "0"], "--batch_size is '0'; valid: >= 1"),
    (TRANSFER + ["--sparsity", "-1"], "--sparsity is '-1'; valid: >= 0"),
    (TRANSFER + ["--sparsity", "2"], "network 'dense' takes no ticket (got kind 'imp' level 2)"),
    (TRANSFER + ["--network", "LT", "--kind", "imported", "--sparsity", "0"],
     "ticket kind 'imported' needs the ticket's name or folder; valid: --pretrained_dir NAME"),
    (TRANSFER + ["--method", "foo"], "invalid choice: 'foo'"),
    (TRANSFER + ["--profile", "missing.yaml"], "profile file"),
    (TRANSFER + ["--profile", "fast"], "unknown profile 'fast'; valid choices: smoke, embedded, paper"),
    # sweep: the cost model's rates, workers, GPUs, Slurm options, slices
    (SWEEP + ["--dry-run", "--throughput-fwd", "inf"], "--throughput-fwd is 'inf'; valid: a finite number"),
    (SWEEP + ["--dry-run", "--throughput-fwd", "-5"], "--throughput-fwd is '-5'; valid: > 0"),
    (SWEEP + ["--dry-run", "--throughput-fwdbwd", "nan"], "--throughput-fwdbwd is 'nan'; valid: a finite number"),
    (SWEEP + ["--dry-run", "--throughput-fwd", "fast"], "--throughput-fwd is 'fast'; valid: a number"),
    (SWEEP + ["--runs-per-gpu", "0"], "--runs-per-gpu is '0'; valid: >= 1"),
    (SWEEP + ["--runs-per-gpu", "-2"], "--runs-per-gpu is '-2'; valid: >= 1"),
    (SWEEP + ["--workers", "-1"], "--workers is '-1'; valid: >= 0"),
    (SWEEP + ["--limit", "-1"], "--limit is '-1'; valid: >= 0"),
    (SWEEP + ["--group-runs", "0"], "--group-runs is '0'; valid: >= 1"),
    (SWEEP + ["--only", "target=cifar10"], "--only target=cifar10 matches no run of this grid"),
    (SWEEP + ["--only", "colour=red"], "unknown --only key 'colour'"),
    (SWEEP + ["--executor", "cloud"], "unknown executor 'cloud'; valid choices: local, submitit, slurm"),
    (SLURM_DRY + ["--slurm", "mem_gb=nan"], "--slurm mem_gb is 'nan'; valid: a finite number"),
    (SLURM_DRY + ["--slurm", "margin=nan"], "--slurm margin is 'nan'; valid: a finite number"),
    (SLURM_DRY + ["--slurm", "margin=0.5"], "--slurm margin is '0.5'; valid: >= 1.0"),
    (SLURM_DRY + ["--slurm", "timeout_min=abc"], "--slurm timeout_min is 'abc'; valid: an integer"),
    (SLURM_DRY + ["--slurm", "gpus_per_node=0"], "--slurm gpus_per_node is '0'; valid: >= 1"),
    (SLURM_DRY + ["--slurm", "nodes=2"], "unknown Slurm option 'nodes'; valid choices: partition"),
    (SLURM_DRY + ["--slurm", "partition"], "--slurm 'partition' is not KEY=VALUE"),
    # reprogrammer, tickets, data, notebooks, ledger, tracking
    (["reprogrammer", "--profile", "smoke", "--seed", "-1"], "--seed: seed -1 is out of range"),
    (["reprogrammer", "--profile", "smoke", "--seed", "1180591620717411303424"], "--seed: seed 1180591620717411303424"),
    (["reprogrammer", "--profile", "smoke", "--alphas", "1.5"], "--alphas is '1.5'; valid: <= 1"),
    (["reprogrammer", "--profile", "smoke", "--device", "gpu"], "invalid choice: 'gpu'"),
    (["tickets", "evaluate", "--profile", "smoke", "--max-images", "0"], "--max-images is '0'; valid: >= 1"),
    (["tickets", "prune", "--profile", "smoke", "--tasks", "0"], "--tasks is '0'; valid: >= 1"),
    (["tickets", "--profile", "smoke", "--levels", "a-b"], "bad --levels 'a-b'"),
    (["tickets", "--profile", "smoke", "--kinds", "lottery"], "unknown ticket kind 'lottery'"),
    (["tickets", "launch", "--profile", "smoke"], "unknown tickets action 'launch'"),
    (["data", "--prepare", "--root", "afile"], "--root afile is a file"),
    (["data", "--datasets", "mnist"], "unknown dataset 'mnist'"),
    (["notebooks", "--profile", "smoke", "--out", "afile"], "--out afile is a file"),
    (["notebooks", "--profile", "smoke", "--out", "afile/x"], "--out afile/x lies under the file"),
    (["notebooks", "--profile", "smoke", "--out", "x", "--only", "01_upstream_and_tickets"], "no notebooks (NN_name.py) in"),
    (["ledger", "--profile", "smoke", "--artifacts", "/nonexistent/artifacts"], "is not a folder; valid"),
    (["track", "--profile", "smoke", "--to", "excel"], "excel"),
    (["trian"], "unknown command 'trian'; valid choices: data, upstream, tickets"),
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


SMOKE = "profile: mystudy\nbackbone: small_resnet\nsource: fashion_mnist\ndevice: cpu\nprotocol: smoke\n" \
        "targets: [digits]\nmethods: [lp]\nlevels: [0]\nbaselines: []\nseeds: [1]\n" \
        "full_data_seeds: [1]\nn_shots: [5]\n"


def _replace(text: str, key: str, value: str) -> str:
    """`text` (a profile) with `key: value` instead of its own line (appended when it has none); a
    value with more `key: value` lines replaces those keys too, unless it names `key` again (a
    key given twice)."""
    new = f"{key}: {value}".splitlines()
    keys = {key} | {line.split(":")[0] for line in new[1:] if not line.startswith(f"{key}:")}
    lines = [line for line in text.splitlines() if line.split(":")[0] not in keys]
    return "\n".join(lines + new) + "\n"


@pytest.mark.parametrize("command, key, value, expected", [
    (["sweep", "--dry-run"], "targets", "[bogus]", "profile targets[0]: unknown target 'bogus'; valid choices: fashion_mnist"),
    (["sweep", "--dry-run"], "targets", "[]", "profile targets is list []; valid: at least 1 item(s)"),
    (["sweep", "--dry-run"], "targets", "[digits, digits]", "profile targets: digits is listed twice"),
    (["sweep", "--dry-run"], "methods", "[]", "profile methods is list []; valid: at least 1 item(s)"),
    (["sweep", "--dry-run"], "levels", "[-1]", "profile levels[0] is int -1; valid: >= 0"),
    (["sweep", "--dry-run"], "n_shots", "[0]", "n_shots value 0 is invalid"),
    (["sweep", "--dry-run"], "seeds", "[-1]", "profile seeds[0]: seed -1 is out of range"),
    (["sweep", "--dry-run"], "seeds", "[1.5]", "profile seeds[0] is float 1.5; valid: an integer"),
    (["sweep", "--dry-run"], "seeds", "[]", "profile seeds is []; valid: at least one seed for the few-shot runs"),
    (["sweep", "--dry-run"], "seeds", "'[1]'", "profile seeds is str '[1]'; valid: a list"),
    (["sweep", "--dry-run"], "n_shots", "[5, -1]\nfull_data_seeds: []", "profile full_data_seeds is []; valid: at least one"),
    (["sweep", "--dry-run"], "workers", "-2", "profile workers is int -2; valid: >= 0"),
    (["sweep", "--dry-run"], "device", "gpu", "profile device: unknown device 'gpu'; valid choices: auto, cpu, cuda"),
    (["sweep", "--dry-run"], "backbone", "resnet999", "profile backbone: unknown backbone 'resnet999'"),
    (["sweep", "--dry-run"], "baseline_level", "true", "profile baseline_level is bool True; valid: an integer"),
    (["sweep", "--dry-run"], "download", "'yes please'", "profile download is str 'yes please'; valid: true or false"),
    (["sweep", "--dry-run"], "trains_in_notebooks", "1", "profile trains_in_notebooks is int 1; valid: true or false"),
    (["sweep", "--dry-run"], "artifacts", "afile", "profile artifacts"),
    (["sweep", "--dry-run"], "figures", "afile/figures", "lies under the file"),
    (["sweep", "--dry-run"], "sedes", "[1]", "unknown profile key 'sedes'; valid choices: profile, backbone"),
    (["sweep", "--dry-run"], "upstream", "[1]", "profile upstream is list [1]; valid: a mapping"),
    (["sweep", "--dry-run", "--executor", "slurm"], "cluster", "{mem_gb: .nan}", "cluster option mem_gb is float nan"),
    (["sweep", "--dry-run"], "data_integrity", "dryrun", "data_integrity is set by"),
    (["upstream"], "upstream", "{lr: .nan}", "upstream.lr is float nan; valid: a finite number"),
    (["upstream"], "upstream", "{lr: 0}", "upstream.lr is int 0; valid: > 0"),
    (["upstream"], "upstream", "{epochs: 2.5}", "upstream.epochs is float 2.5; valid: an integer"),
    (["upstream"], "upstream", "{optimizer: lion}", "unknown upstream optimizer 'lion'; valid choices: sgd, adam"),
    (["upstream"], "upstream", "{epochz: 3}", "unknown upstream recipe key 'epochz'; valid choices: epochs"),
    (["tickets"], "tickets", "{prune_fraction: 1.5}", "tickets.prune_fraction is float 1.5; valid: < 1"),
    (["tickets"], "tickets", "{exclude: [fc.weight, 3]}", "tickets.exclude[1] is int 3; valid: a string"),
    (["reprogrammer"], "reprogrammer", "{encoder: embedded, template: x}", "reprogrammer.template must contain '{}'"),
    (["reprogrammer"], "reprogrammer", "{encoder: embedded, epochs: .inf}", "reprogrammer.epochs is float inf"),
    (["reprogrammer"], "reprogrammer", "{encoder: embedded, severities: [7]}", "unknown reprogrammer severity 7"),
    (["transfer", "--dataset", "digits", "--method", "lp"], "artifacts", "afile", "profile artifacts"),
    (["ledger"], "protocol", "smoke\nprotocol: rlt", "key 'protocol' is given twice (first on line 12); valid: each key once"),
    (["ledger"], "levels", "[0, 2", "is not valid YAML at line"),
])
def test_bad_profile_files(command, key, value, expected, capsys, home):
    """Each profile problem is one line from whichever command reads the file, before anything runs:
    `sweep --dry-run` prints no grid first, `upstream` writes no model."""
    (home / "mystudy.yaml").write_text(_replace(SMOKE, key, value))
    assert expected in one_line_error([*command, "--profile", "mystudy.yaml"], capsys, home)


@pytest.mark.parametrize("text, expected", [
    ("profile: smoke\n\tlevels: [0]\n", "is not valid YAML at line 2"),
    ("- profile\n- smoke\n", "holds a YAML list; valid: a mapping of profile keys"),
    ("profile: embedded\nbackbone: small_resnet\nsource: fashion_mnist\n", "names profile 'embedded'; valid choices: 'smoke'"),
    ("profile: smoke\nsource: fashion_mnist\n", "profile key 'backbone' is missing; required: profile, backbone, source"),
])
def test_bad_built_in_profile_files(text, expected, capsys, home, monkeypatch):
    bad = home / "smoke.yaml"
    bad.write_text(text)
    monkeypatch.setattr(paths, "profile_file", lambda name: bad)
    assert expected in one_line_error(["ledger", "--profile", "smoke"], capsys, home)


@pytest.mark.parametrize("command", [["data"], ["upstream"], ["tickets"], ["transfer", "--dataset", "digits"],
                                     ["sweep"], ["ledger"], ["reprogrammer"], ["notebooks", "--out", "x"], ["track"]])
def test_every_command_takes_a_profile_by_path(command, capsys, home):
    """`--profile PATH.yaml` is read by every command that takes a profile (transfer said "invalid choice")."""
    (home / "mystudy.yaml").write_text(SMOKE + "sedes: [1]\n")
    line = one_line_error([*command, "--profile", "mystudy.yaml"], capsys, home)
    assert "unknown profile key 'sedes'" in line


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


def test_tickets_import_takes_file_after_options_and_refuses_a_pickle_in_one_line(capsys, home):
    (home / "evil.pkl").write_bytes(pickle.dumps({"conv1.weight": _Evil()}, protocol=2))
    line = one_line_error(["tickets", "import", "--profile", "smoke", "evil.pkl", "--name", "x"], capsys, home)
    assert line.startswith("error: evil.pkl is not a weights file reprolib can load safely (it pickles posix.system")
    assert "unrecognized" not in line


def test_a_download_that_does_not_import_is_removed(capsys, home):
    (home / "junk.pth").write_text("not a checkpoint\n")
    url = (home / "junk.pth").as_uri()
    line = one_line_error(["tickets", "fetch", "str-resnet50-81", "--profile", "smoke", "--url", url], capsys, home)
    assert "downloads/str-resnet50-81.pth is not a weights file reprolib can load safely" in line
    assert not list(home.rglob("downloads/*"))


def test_a_shipped_ledger_without_its_run_records_is_not_rebuilt_as_empty(capsys, home):
    """A fresh clone holds the studies' ledger.csv but not their runs: `ledger` must keep it."""
    artifacts = home / "shipped"
    artifacts.mkdir()
    (artifacts / "ledger.csv").write_text("id,accuracy\nabc,0.5\n")
    line = one_line_error(["ledger", "--profile", "smoke", "--artifacts", str(artifacts)], capsys, home)
    assert "is kept as it is" in line and "run the sweep first" in line
    assert (artifacts / "ledger.csv").read_text() == "id,accuracy\nabc,0.5\n"


# Unsafe files: a crafted data batch, weights replaced by a pickle. Nothing of them runs.

def _dry_run_root_with_a_crafted_cifar_batch(home: Path) -> Path:
    """The paper-dryrun data root under `home`, written and marked by reprolib.dryrun, whose CIFAR-10
    first batch is then replaced by a pickle whose payload would write a file."""
    from reprolib.dryrun import write_dryrun_root

    root = home / "data" / "dryrun"
    write_dryrun_root(root, ["cifar10"], ["resnet18"], n_per_class_train=1, n_per_class_test=1)
    batch = root / "cifar10" / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(pickle.dumps({"data": _Evil(), "labels": [0]}, protocol=2))
    return batch


@pytest.mark.parametrize("argv", [["data", "--profile", "paper-dryrun"],
                                  ["transfer", "--profile", "paper-dryrun", "--dataset", "cifar10", "--method", "lp",
                                   "--no_progress"]], ids=["data", "transfer"])
def test_a_crafted_cifar_batch_never_runs_even_in_the_dry_run_s_trusted_root(argv, capsys, home):
    """The dry run's own root skips torchvision's md5 checks; its CIFAR batches are still read by the
    restricted unpickler (reprolib.data.integrity), which refuses the payload in one line."""
    batch = _dry_run_root_with_a_crafted_cifar_batch(home)
    line = one_line_error(argv, capsys, home)
    assert line.startswith(f"error: {batch} is not a data file reprolib can read safely: it pickles posix.system")


def test_a_user_profile_cannot_turn_the_md5_checks_off(capsys, home):
    """`data_integrity: dryrun` from a user's profile, over a marked root with a crafted batch: refused."""
    _dry_run_root_with_a_crafted_cifar_batch(home)
    (home / "mine.yaml").write_text(_replace(_replace(SMOKE.replace("mystudy", "mine"), "targets", "[cifar10]"),
                                             "data_integrity", "dryrun\ndata_root: data/dryrun"))
    line = one_line_error(["data", "--profile", "mine.yaml"], capsys, home)
    assert "data_integrity is set by" in line and "never a user's" in line


def _smoke_ticket_level(home: Path, level: int) -> Path:
    """A smoke IMP level made of small tensor files, as `tickets` lays it out (sizes in its report)."""
    import torch

    from reprolib.sparsity import masks as M

    folder = M.ticket_dir(home / "artifacts" / "smoke", "imp", level)
    folder.mkdir(parents=True)
    M.save_tensors(folder / "model.pth", {"w": torch.ones(4, 4)})
    M.save_tensors(folder / "mask.pth", {"w": torch.ones(4, 4)})
    M.save_report(folder, {"kind": "imp", "level": level, "density": 1.0, "density_rlt": 1.0})
    return folder


def test_a_ticket_replaced_by_a_pickle_is_named_as_such(capsys, home):
    level = _smoke_ticket_level(home, 2)
    (level / "model.pth").write_bytes(pickle.dumps({"w": _Evil()}, protocol=2))
    line = one_line_error(TRANSFER + ["--network", "LT", "--sparsity", "2", "--method", "lp"], capsys, home)
    assert line.startswith(f"error: {level / 'model.pth'} is not a weights file reprolib can load safely "
                           "(it pickles posix.system")
    assert "remake it with `python -m reprolib tickets --profile smoke --levels 0-2 --kinds imp`" in line


def test_an_encoder_cache_replaced_by_a_pickle_is_named_as_such(capsys, home):
    encoder = paths.encoder_file(home / "artifacts" / "smoke")
    encoder.parent.mkdir(parents=True)
    encoder.write_bytes(pickle.dumps({"settings": _Evil()}, protocol=2))
    line = one_line_error(["reprogrammer", "--profile", "smoke", "--encoder-only"], capsys, home)
    assert line == f"error: {encoder} is not a weights file reprolib can load safely (it pickles posix.system, " \
                   "which weights-only loading refuses; nothing of it ran); delete it and it is trained again"


def test_a_glyphs_cache_replaced_by_a_pickle_is_named_as_such(capsys, home):
    from reprolib.data import glyphs

    root = home / "gdata"
    root.mkdir()
    cache = glyphs.cache_path(root, glyphs.find_fonts(None))
    cache.write_bytes(pickle.dumps({"images": _Evil()}, protocol=2))
    line = one_line_error(["data", "--datasets", "glyphs", "--root", "gdata"], capsys, home)
    assert line.startswith(f"error: gdata/{cache.name} is not a weights file reprolib can load safely (it pickles "
                           "posix.system")


# A folder another writer holds: refused before anything is written.

def _held(runs: Path) -> None:
    """A lock on `runs` held by a live process of this host (this test's own)."""
    import socket

    runs.mkdir(parents=True, exist_ok=True)
    (runs / ".sweep.lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                                  "started": "earlier", "what": "the sweep command"}))


@pytest.mark.parametrize("argv", [SWEEP, TRANSFER + ["--method", "lp"], ["ledger", "--profile", "smoke"]],
                         ids=["sweep", "transfer", "ledger"])
def test_a_locked_results_folder_refuses_every_writer_which_writes_nothing(argv, capsys, home):
    runs = home / "artifacts" / "smoke" / "runs"
    _smoke_ticket_level(home, 0)   # the dense model a transfer run names (refused before it is loaded)
    _held(runs)
    (home / "artifacts" / "smoke" / "ledger.csv").write_text("id,accuracy\nabc,0.5\n")   # a sweep must not rewrite it
    line = one_line_error(argv, capsys, home)
    assert f"results folder {runs} is in use by the sweep command (pid {os.getpid()}" in line
