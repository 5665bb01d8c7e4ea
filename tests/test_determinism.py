"""Same numbers whatever the thread count and the machine's vector instructions (reprolib.determinism)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reprolib import determinism
from reprolib.cli import main

ROOT = Path(__file__).resolve().parent.parent
SWITCHES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_CBWR", "OMP_NUM_THREADS",
            "MKL_NUM_THREADS", determinism.ISA_SWITCH)


def test_pin_environment_overrides_the_ambient_switches(monkeypatch):
    monkeypatch.setattr(determinism, "is_x86_64", lambda: True)
    env = {"ATEN_CPU_CAPABILITY": "avx512", "OMP_NUM_THREADS": "8"}
    determinism.pin_environment(env)
    assert env == {**determinism.ISA_VARIABLES, **determinism.THREAD_VARIABLES}
    native = {determinism.ISA_SWITCH: "native", "ATEN_CPU_CAPABILITY": "avx512"}
    determinism.pin_environment(native)   # opted out: the capability stays, the threads are still the protocol's
    assert native["ATEN_CPU_CAPABILITY"] == "avx512" and native["OMP_NUM_THREADS"] == "1"
    monkeypatch.setattr(determinism, "is_x86_64", lambda: False)
    arm = {}
    determinism.pin_environment(arm)      # nothing to pin off x86-64
    assert arm == determinism.THREAD_VARIABLES


# A few training steps of a small conv net (conv, batch norm, linear, log-softmax, SGD): the
# kernels the three libraries pick by instruction set.
PROBE = textwrap.dedent('''
    import hashlib
    import reprolib
    import torch
    from torch import nn
    import torch.nn.functional as F
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(32, 3, 16, 16), torch.randint(0, 10, (32,))
    for _ in range(3):
        loss = F.cross_entropy(net(x), y); opt.zero_grad(); loss.backward(); opt.step()
    flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    print(torch.backends.cpu.get_cpu_capability(), hashlib.sha256(flat.numpy().tobytes()).hexdigest())
''')


def probe(**extra: str) -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SWITCHES}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**env, **extra}, cwd=ROOT, capture_output=True,
                         text=True, check=True)
    capability, digest = out.stdout.split()
    return capability, digest


@pytest.mark.skipif(not determinism.is_x86_64(), reason="the pin is for x86-64")
def test_pinned_numbers_do_not_depend_on_the_ambient_capability():
    """Under the pin, a user's AVX-512 setting and an AVX2 machine (simulated: all three libraries
    held to AVX2 without the pin) give the same bytes."""
    pinned = probe(ATEN_CPU_CAPABILITY="avx512", ONEDNN_MAX_CPU_ISA="AVX512_CORE", OMP_NUM_THREADS="2")
    avx2_machine = probe(REPROLIB_CPU_ISA="native", ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2",
                         MKL_CBWR="AVX2", OMP_NUM_THREADS="1")
    assert pinned[0] == determinism.PINNED_CAPABILITY
    assert pinned == avx2_machine


@pytest.mark.parametrize("method", ["smm", "lp"])
def test_the_same_run_under_1_and_2_threads_gives_identical_records(smoke_upstream, tmp_path, method, capsys):
    """The transfer command trains on the protocol's one thread whatever the process had (a sweep worker, a
    notebook kernel): same metrics, same curves, same learned state, byte for byte. SMM full data: the
    runs that moved most with the thread count."""
    import numpy as np
    import torch

    before = torch.get_num_threads()
    records = []
    try:
        for threads in (2, 1):
            torch.set_num_threads(threads)
            out = tmp_path / f"threads{threads}"
            assert main(["transfer", "--profile", "smoke", "--dataset", "digits", "--method", method, "--n_shot", "-1",
                         "--epochs", "1", "--device", "cpu", "--no_progress", "--results_path", str(out)]) == 0
            (path,) = out.glob("*.json")
            records.append((json.loads(path.read_text()), np.load(path.with_suffix(".npz"))))
    finally:
        torch.set_num_threads(before)
    (two, two_state), (one, one_state) = records
    assert two["id"] == one["id"] and two["metrics"] == one["metrics"] and two["curves"] == one["curves"]
    assert sorted(two_state.files) == sorted(one_state.files)
    assert all(np.array_equal(two_state[k], one_state[k]) for k in two_state.files)
    assert two["cpu"]["threads"] == one["cpu"]["threads"] == determinism.CPU_THREADS
    capsys.readouterr()
