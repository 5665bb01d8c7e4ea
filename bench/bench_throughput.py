"""Backbone throughput: images/s forward and forward+backward, the figures `sweep --dry-run` prices a grid at.

`python bench/bench_throughput.py --backbone NAME [--device auto] [--batch 128] [--steps 20]`
(also run by `bench.py` for the profile's backbone). Forward: eval mode, no gradient (the
test, label-mapping, LP-feature and OOD passes). Forward+backward: the frozen backbone with
the gradient flowing to its input (what a prompt's training step costs), under bf16 autocast
on CUDA as the transfer loop trains. Random weights and images at the backbone's input size:
the speed does not depend on the values. The table's columns (backbone | pass | images/s)
are what reprolib.sweep.cost reads; the last row of a backbone wins.
"""

from __future__ import annotations

import argparse
import time

import torch


def _timed(step, steps: int, device: str) -> float:
    step()                                 # warm-up (cuDNN autotuning, allocations)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def backbone_throughput(name: str, device: str = "auto", batch: int = 128, steps: int = 20) -> list[dict]:
    """Rows {backbone, pass, images/s, device, note} for the forward and forward+backward passes."""
    from reprolib.devices import autocast, device_name, resolve_device
    from reprolib.models import get_backbone

    device = resolve_device(device)
    backbone = get_backbone(name, weights=None).to(device).eval().requires_grad_(False)
    x = torch.rand(batch, backbone.channels, backbone.input_size, backbone.input_size, device=device)
    if device == "cuda":
        backbone, x = backbone.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)

    def forward():
        with torch.no_grad():
            backbone(x)

    def forward_backward():
        inputs = x.detach().requires_grad_(True)
        with autocast(device):
            out = backbone(inputs)
        out.float().sum().backward()

    note = f"batch {batch}, {steps} steps, {backbone.input_size} px, {torch.get_num_threads()} threads"
    return [{"backbone": name, "pass": kind, "images/s": f"{batch * steps / _timed(step, steps, device):.0f}",
             "device": device_name(device), "note": note}
            for kind, step in (("fwd", forward), ("fwd+bwd", forward_backward))]


def to_markdown(rows: list[dict], title: str = "Backbone throughput (read by sweep --dry-run)") -> str:
    columns = ["backbone", "pass", "images/s", "device", "note"]
    lines = [f"## {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/bench_throughput.py", description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", required=True, help="a backbone registry name")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)
    print(to_markdown(backbone_throughput(args.backbone, args.device, args.batch, args.steps)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
