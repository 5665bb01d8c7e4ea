"""Backbone throughput: images/s forward and forward+backward, the figures `sweep --dry-run` prices a grid at.

`python bench/bench_throughput.py --backbone NAME [--device auto] [--batch 128] [--seconds 10] [--record]`
(also run by `bench.py` and `gpu_check.py`). Forward: eval mode, no gradient, float32 (cuDNN's
TF32 convolutions on CUDA, torch's default), as the test, label-mapping, LP-feature and OOD
passes run (reprolib.batching: evaluation never autocasts). Forward+backward: the frozen
backbone with the gradient flowing to its input, as a prompt's training step runs: bf16
autocast on CUDA, float32 on the CPU (reprolib.transfer.train). On CUDA both use channels_last
and cuDNN's autotuner, as the transfer loop does. Random weights and images at the backbone's
input size: the speed does not depend on the values. Each pass runs `steps` timed steps after
one warm-up step, or fewer when `seconds` runs out first (at least two).

`--record` appends the rows to bench/rates.csv (reprolib.sweep.rates), labelled with the device,
date and precision: the dry run prices with the last rows for its backbone on its kind of device.
"""

from __future__ import annotations

import argparse
import time

import torch


def precision(device: str) -> dict[str, str]:
    """What each pass computes in on `device`, as the transfer loop runs it."""
    if device.startswith("cuda"):
        return {"fwd": "float32 (TF32 convolutions)", "fwd+bwd": "bf16 autocast"}
    return {"fwd": "float32", "fwd+bwd": "float32"}


def timed_rate(step, batch: int, steps: int, device: str, seconds: float | None = None) -> float:
    """Images/s of `step` (one batch each): a warm-up step (cuDNN autotuning, allocations), then
    `steps` steps or as many as fit `seconds` (at least two), the device synchronised around them."""
    step()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    start, done = time.perf_counter(), 0
    while done < steps and (done < 2 or seconds is None or time.perf_counter() - start < seconds):
        step()
        done += 1
    sync()
    return batch * done / (time.perf_counter() - start)


def backbone_passes(backbone, x: torch.Tensor):
    """(forward, forward_backward) step functions for `backbone` on the batch `x` (module docstring)."""
    from reprolib.devices import autocast

    device = str(x.device)

    def forward():
        with torch.no_grad():
            backbone(x)

    def forward_backward():
        inputs = x.detach().requires_grad_(True)
        with autocast(device):
            out = backbone(inputs)
        out.float().sum().backward()

    return forward, forward_backward


def backbone_throughput(name: str, device: str = "auto", batch: int = 128, steps: int = 20,
                        seconds: float | None = None, by: str = "bench/bench_throughput.py",
                        fwd_batch: int | None = None) -> list[dict]:
    """Rows (reprolib.sweep.rates.RATE_COLUMNS, plus `note`) for the forward pass (at `fwd_batch`,
    default `batch`) and the forward+backward pass (at `batch`).

    Many parameters because each is one knob of the measurement."""
    from reprolib.devices import device_name, resolve_device
    from reprolib.models import get_backbone

    device = resolve_device(device)
    backbone = get_backbone(name, weights=None).to(device).eval().requires_grad_(False)
    if device == "cuda":
        torch.backends.cudnn.benchmark = True
        backbone = backbone.to(memory_format=torch.channels_last)
    kinds, rows = precision(device), []
    note = f"{torch.get_num_threads()} threads" if device == "cpu" else f"torch {torch.__version__}"
    for kind, size in (("fwd", fwd_batch or batch), ("fwd+bwd", batch)):
        x = torch.rand(size, backbone.channels, backbone.input_size, backbone.input_size, device=device)
        if device == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        step = backbone_passes(backbone, x)[kind == "fwd+bwd"]
        rows.append({"backbone": name, "pass": kind, "images_per_s": f"{timed_rate(step, size, steps, device, seconds):.4g}",
                     "precision": kinds[kind], "batch": size, "px": backbone.input_size, "device": device_name(device),
                     "date": time.strftime("%Y-%m-%d"), "by": by, "note": note})
    return rows


def to_markdown(rows: list[dict], title: str = "Backbone throughput (bench/rates.csv, read by sweep --dry-run)") -> str:
    columns = ["backbone", "pass", "images_per_s", "precision", "batch", "px", "device", "date", "note"]
    lines = [f"## {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/bench_throughput.py", description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", required=True, help="a backbone registry name")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=None, help="stop each pass's timing after this long")
    parser.add_argument("--record", action="store_true", help="append the rows to bench/rates.csv")
    args = parser.parse_args(argv)
    rows = backbone_throughput(args.backbone, args.device, args.batch, args.steps, args.seconds)
    if args.record:
        from reprolib.sweep.rates import record_rates

        print(f"rates appended to {record_rates(rows)}")
    print(to_markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
