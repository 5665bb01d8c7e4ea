"""Same numbers on every x86-64 machine with AVX2, whatever its cores: the CPU pins.

PyTorch's CPU results depend on two things besides the seed, and both are fixed here (the
third item says where the first does not hold, and how the records tell):

1. The instruction set its kernels use. torch 2.14's x86 wheel picks, per process and at
   library load, among kernels for AVX-512 / AVX2 / plain code, through three libraries,
   each with its own switch (measured on this build: each one alone changes a training
   step's result on an AVX-512 machine, see bench/bench_cpu_pin.py):
   - `ATEN_CPU_CAPABILITY`: ATen's own vectorised kernels (softmax, log_softmax,
     elementwise, reductions, the optimizers' foreach ops); torch.backends.cpu.
     get_cpu_capability() reports the choice.
   - `ONEDNN_MAX_CPU_ISA` (older name `DNNL_MAX_CPU_ISA`): oneDNN (mkldnn), which runs
     convolutions forward and backward and batch norm on CPU.
   - `MKL_CBWR`: MKL's conditional numerical reproducibility branch; MKL runs the float
     matrix products (linear layers, conv via im2col fallbacks).
   All three are read once, when the library loads, so they must be in the environment
   before `import torch`. `pin_environment()` puts them there; `reprolib/__init__.py`
   calls it, so every process that imports reprolib before torch is pinned: the CLI
   (`python -m reprolib ...`), the sweep's spawned workers (they import reprolib first,
   and inherit the environment anyway), the notebook kernels (papermill starts them from
   the `notebooks` process, whose environment they inherit), and a notebook or script
   whose first import is reprolib. A process that imported torch first cannot be pinned
   any more; its records say so (`cpu_facts()["isa_pinned"]` False).
   The pin is AVX2, the newest instruction set nearly every x86-64 machine of the last
   ten years has; a machine without AVX2 runs torch's plain kernels, and its records show
   that capability. `REPROLIB_CPU_ISA=native` turns the pin off (the records say so).
   Off x86-64 (ARM, e.g. Apple silicon) nothing is pinned: the numbers agree with the
   committed ones within the tables' intervals, not byte for byte.
2. The number of intra-op threads. ATen splits a reduction (a sum over a batch, batch-norm
   statistics) into one chunk per thread and adds the partial sums, so 1 and 2 threads
   give different last bits, which training amplifies (the embedded SMM runs moved by up
   to 5 points). The protocol fixes it: every CPU run trains on CPU_THREADS = 1 thread, so
   `--workers`, the core count and resuming on another machine never change a result.
   One, because it is the only count every machine runs alike, and because the sweep
   gets its CPU throughput from parallel runs (workers), not from threads inside one run;
   GPU runs are unaffected (their kernels do not use these threads).
3. What MKL actually runs. MKL may not honour `MKL_CBWR`: on AMD processors it answers a
   request for the AVX2 branch (or any Intel branch) with its AUTO mode, so the pin does not
   reach MKL there (docs/reproducibility.md). `mkl_mode()` asks MKL itself (mkl_cbwr_get)
   which conditional-numerical-reproducibility mode this process runs in.

Each record stores `cpu_facts()` (the capability in use, the threads, whether pinned, the MKL
mode), and a CPU run's id hashes `kernel_facts(device)` (the same facts, with the protocol's
thread count), so a record made under other CPU facts is never taken for this machine's run.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import sys
from collections.abc import MutableMapping
from typing import Any

ISA_SWITCH = "REPROLIB_CPU_ISA"          # avx2 (default) | native (no pin)
ISA_CHOICES = ("avx2", "native")
PINNED_CAPABILITY = "AVX2"                # what torch.backends.cpu.get_cpu_capability() reports when pinned
ISA_VARIABLES = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "DNNL_MAX_CPU_ISA": "AVX2",
                 "MKL_CBWR": "AVX2"}
CPU_THREADS = 1                           # intra-op threads of every CPU run (the protocol's)
THREAD_VARIABLES = {"OMP_NUM_THREADS": str(CPU_THREADS), "MKL_NUM_THREADS": str(CPU_THREADS)}

_STATE = {"isa_pinned": False}


def isa_choice(environ: MutableMapping[str, str] = os.environ) -> str:
    """The user's REPROLIB_CPU_ISA (default avx2); a bad value falls back to the pin, loudly."""
    value = environ.get(ISA_SWITCH, "avx2").strip().lower()
    if value not in ISA_CHOICES:
        print(f"warning: {ISA_SWITCH}={value!r} is not one of {', '.join(ISA_CHOICES)}; pinning avx2",
              file=sys.stderr)
        return "avx2"
    return value


def is_x86_64() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def pin_environment(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Put the ISA and thread pins into `environ` (overriding what is there); True when the ISA pin
    will take effect in this process (x86-64, not `native`, torch not loaded yet)."""
    environ.update(THREAD_VARIABLES)
    if isa_choice(environ) == "native" or not is_x86_64():
        return False
    # torch already loaded: pinned only if the pins were inherited (a kernel started by `notebooks`)
    inherited = all(environ.get(k) == v for k, v in ISA_VARIABLES.items())
    environ.update(ISA_VARIABLES)
    pinned = "torch" not in sys.modules or inherited
    if environ is os.environ:
        _STATE["isa_pinned"] = pinned
    return pinned


def pin_threads() -> int:
    """Set torch's intra-op threads to CPU_THREADS (call before a CPU run trains); returns the old count."""
    import torch

    previous = torch.get_num_threads()
    if previous != CPU_THREADS:
        torch.set_num_threads(CPU_THREADS)
    return previous


def cpu_facts(threads: int | None = None) -> dict[str, Any]:
    """What decided this process's CPU numbers: the kernels' capability, the threads (`threads`, or
    torch's current count), the pins, the MKL mode that runs (`mkl_mode`)."""
    import torch

    return {"capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads() if threads is None else threads,
            "isa_pin": isa_choice() if is_x86_64() else "none (not x86-64)",
            "isa_pinned": bool(_STATE["isa_pinned"]) and torch.backends.cpu.get_cpu_capability() == PINNED_CAPABILITY,
            "machine": platform.machine(), "mkl": mkl_mode()}


def kernel_facts(device: str) -> dict[str, Any] | None:
    """The CPU facts a run's numbers depend on, for its id: cpu_facts with the protocol's threads
    (every CPU run trains on CPU_THREADS: pin_threads) on the CPU; None on a GPU, whose kernels
    these facts do not choose."""
    return cpu_facts(threads=CPU_THREADS) if device == "cpu" else None


# mkl_cbwr_get's answer (mkl_cbwr.h): the branch in the low bits, MKL_CBWR_STRICT as a flag.
MKL_BRANCHES = {0: "OFF", 1: "BRANCH_OFF", 2: "AUTO", 3: "COMPATIBLE", 4: "SSE2", 5: "SSE3", 6: "SSSE3",
                7: "SSE4_1", 8: "SSE4_2", 9: "AVX", 10: "AVX2", 11: "AVX512_MIC", 12: "AVX512",
                13: "AVX512_MIC_E1", 14: "AVX512_E1"}
MKL_CBWR_ALL, MKL_CBWR_STRICT = -1, 0x10000
# Where MKL's query is exported: the process (a conda torch links libmkl_rt) or the wheel's libtorch_cpu.
_MKL_QUERIES = ("MKL_CBWR_Get", "mkl_cbwr_get", "mkl_serv_cbwr_get")


@functools.lru_cache(maxsize=1)
def mkl_mode() -> str:
    """The MKL mode this process runs in, as MKL reports it ("AVX2", "AUTO", "BRANCH_OFF", ...,
    "+STRICT" when set); "none" without MKL, "unknown" when its query cannot be found. Fixed
    for the life of a process (MKL reads MKL_CBWR once), so it is asked once."""
    import torch

    if not torch.backends.mkl.is_available():
        return "none (torch without MKL)"
    query = _mkl_query(torch)
    if query is None:
        return "unknown (MKL's mkl_cbwr_get is not exported)"
    value = query(MKL_CBWR_ALL)
    if value < 0:
        return f"unknown (mkl_cbwr_get error {value})"
    branch = MKL_BRANCHES.get(value & 0xFFFF, f"branch {value & 0xFFFF}")
    return branch + ("+STRICT" if value & MKL_CBWR_STRICT else "")


def _mkl_query(torch) -> Any:
    """MKL's mkl_cbwr_get from the process or torch's CPU library, or None."""
    libraries = [None, os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")]
    for library in libraries:
        try:
            handle = ctypes.CDLL(library)
        except OSError:
            continue
        for name in _MKL_QUERIES:
            query = getattr(handle, name, None)
            if query is not None:
                query.restype, query.argtypes = ctypes.c_int, [ctypes.c_int]
                return query
    return None
