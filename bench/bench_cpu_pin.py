"""What the CPU pin (reprolib.determinism) changes: the numbers, and the speed.

`python bench/bench_cpu_pin.py [--steps 20] [--repeat 3] [--out bench/results.md]` trains the embedded
backbone (small_resnet, Fashion-MNIST-sized random images, SGD) for `--steps` steps in a
fresh process per scenario and prints, per scenario, the kernels' capability, the threads,
a digest of the trained weights and the time per step (median over `--repeat` interleaved
rounds, so a drifting machine load hits every scenario alike):

- ambient machine, unpinned (REPROLIB_CPU_ISA=native), 1 and 2 threads, and with the
  user forcing ATEN_CPU_CAPABILITY=avx512 / avx2 or oneDNN / MKL to AVX2 one at a time:
  which switch moves the numbers, and what they cost;
- pinned (the default): under each of those ambient settings, the same digest.

The process imports reprolib before torch (as every reprolib entry point does), so the pin
applies; the unpinned rows set REPROLIB_CPU_ISA=native and their own thread count.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = textwrap.dedent('''
    import hashlib, sys, time
    import reprolib                      # first: the pin (unless REPROLIB_CPU_ISA=native)
    import torch
    import torch.nn.functional as F
    from reprolib.determinism import cpu_facts
    from reprolib.models import get_backbone

    steps, threads = int(sys.argv[1]), int(sys.argv[2])
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    backbone = get_backbone("small_resnet", weights=None).train()
    opt = torch.optim.SGD(backbone.parameters(), lr=0.05, momentum=0.9)
    x, y = torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,))
    def step():
        loss = F.cross_entropy(backbone(backbone.normalize(x)), y)
        opt.zero_grad(); loss.backward(); opt.step()
    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    flat = torch.cat([p.detach().reshape(-1) for p in backbone.parameters()])
    facts = cpu_facts()
    print(facts["capability"], facts["threads"], hashlib.sha256(flat.numpy().tobytes()).hexdigest()[:12],
          f"{seconds * 1000:.1f}")
''')

# (label, extra environment, threads set in-process (0 = leave the process's))
SCENARIOS = [
    ("unpinned, 2 threads", {"REPROLIB_CPU_ISA": "native", "OMP_NUM_THREADS": "2"}, 2),
    ("unpinned, 1 thread", {"REPROLIB_CPU_ISA": "native"}, 1),
    ("unpinned, ATEN_CPU_CAPABILITY=avx2", {"REPROLIB_CPU_ISA": "native", "ATEN_CPU_CAPABILITY": "avx2"}, 1),
    ("unpinned, ONEDNN_MAX_CPU_ISA=AVX2", {"REPROLIB_CPU_ISA": "native", "ONEDNN_MAX_CPU_ISA": "AVX2"}, 1),
    ("unpinned, MKL_CBWR=AVX2", {"REPROLIB_CPU_ISA": "native", "MKL_CBWR": "AVX2"}, 1),
    ("unpinned, all three AVX2 (an AVX2 machine)", {"REPROLIB_CPU_ISA": "native", "ATEN_CPU_CAPABILITY": "avx2",
                                                    "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}, 1),
    ("pinned (default)", {}, 0),
    ("pinned, ambient ATEN_CPU_CAPABILITY=avx512", {"ATEN_CPU_CAPABILITY": "avx512"}, 0),
    ("pinned, ambient ONEDNN_MAX_CPU_ISA=AVX512_CORE", {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}, 0),
    ("pinned, ambient OMP_NUM_THREADS=2", {"OMP_NUM_THREADS": "2"}, 0),
]


def run_probe(extra: dict[str, str], threads: int, steps: int) -> list[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_CBWR",
                        "OMP_NUM_THREADS", "MKL_NUM_THREADS", "REPROLIB_CPU_ISA")}
    env.update(extra)
    out = subprocess.run([sys.executable, "-c", PROBE, str(steps), str(threads)], env=env, cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3, help="rounds over all scenarios (interleaved: load drifts)")
    parser.add_argument("--out", default=None, help="append the table to this Markdown file")
    args = parser.parse_args()
    results: dict[str, list[list[str]]] = {label: [] for label, _, _ in SCENARIOS}
    for _ in range(args.repeat):
        for label, extra, threads in SCENARIOS:
            results[label].append(run_probe(extra, threads, args.steps))
    rows = [f"| scenario | capability | threads | weights digest | ms / step, median of {args.repeat} (min) |",
            "|---|---|---|---|---|"]
    for label, runs in results.items():
        digests = {r[2] for r in runs}
        ms = sorted(float(r[3]) for r in runs)
        digest = next(iter(digests)) if len(digests) == 1 else "differs between rounds!"
        rows.append(f"| {label} | {runs[0][0]} | {runs[0][1]} | `{digest}` | {ms[len(ms) // 2]:.1f} ({ms[0]:.1f}) |")
        print(rows[-1], flush=True)
    if args.out:
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
        head = (f"\n## CPU pin: instruction set and threads (bench/bench_cpu_pin.py, {args.steps} steps of "
                f"small_resnet, batch 64; {cpu}, {os.cpu_count()} cores)\n\n")
        with open(args.out, "a") as f:
            f.write(head + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
