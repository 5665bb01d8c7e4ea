"""`make bench`: our transfer loops against loops built the way the public code builds them.

`python bench/bench.py --out bench/results.md [--epochs E] [--profile smoke]` (what `make bench` runs;
reprolib must be importable: the Makefile's venv has it installed)

Same backbone (the profile's dense upstream model), same data (`digits`), same protocol
(`embedded`), on this CPU:
- LP (RLT schedule, 100 epochs by default): our cached-feature training (features once, head on the stored features) vs the public
  way (every epoch a DataLoader over PIL images with per-sample torchvision transforms and a
  backbone forward per batch). Goal: >= 20x faster at the same accuracy.
- VP (padding prompt, ILM) and SMM: images/s of our loop (tensors in memory, batched
  label-mapping pass) vs the public way (DataLoader over PIL images with per-sample
  transforms, a separate mapping pass through a DataLoader every epoch). Goal: >= 2x.
- Peak memory: the process's max RSS after each phase (getrusage; it only grows).
Then `bench_grouped.py` (grouped prompt runs vs one at a time, each loop vs a bare
forward+backward at its batch, the whole sweep's time one at a time and grouped), `bench_tickets.py` beside this file (upstream and ticket timings) and `bench_throughput.py`
(the profile backbone's images/s forward and forward+backward, which `sweep --dry-run` reads).
The results (Markdown table) are written atomically to --out and printed. Timings depend
on the machine's load; nothing here asserts them.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from reprolib.records import atomic_write

from bench_table import to_markdown   # beside this file: the script's folder is on sys.path


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class PILDigits(torch.utils.data.Dataset):
    """Images as PIL 'L' images with per-sample torchvision transforms (the public style)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        from PIL import Image

        self.pil = [Image.fromarray((x[0] * 255).round().byte().numpy(), mode="L") for x in images]
        self.labels, self.transform = labels.tolist(), transform

    def __len__(self) -> int:
        return len(self.pil)

    def __getitem__(self, i: int):
        return self.transform(self.pil[i]), self.labels[i]


def _loader(data, batch_size: int, shuffle: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=g)


def _public_ilm_map(backbone, prompt, loader, num_classes: int) -> torch.Tensor:
    """The public code's separate mapping pass: a full DataLoader sweep, then greedy matching."""
    from reprolib.transfer.labelmap import frequency_matrix, greedy_label_map

    logits, labels = [], []
    prompt.eval()
    with torch.no_grad():
        for x, y in loader:
            logits.append(backbone(prompt(x)))
            labels.append(y)
    return greedy_label_map(frequency_matrix(torch.cat(logits), torch.cat(labels), num_classes))


def public_prompt_loop(backbone, method: str, protocol, epochs: int, seed: int, train_data, test_data,
                       train_tf, map_tf, test_tf, prompt_size: int) -> tuple[float, float]:
    """(seconds, final test accuracy) of a VP/SMM loop written the public code's way.

    Many parameters because it mirrors the public scripts' loop one to one: three separate
    torchvision transforms (train, mapping pass, test) are the point of the comparison.
    """
    from reprolib.prompts import get_prompt
    from reprolib.schedules import multistep
    from reprolib.transfer.registry import get, method_hparams

    hparams = method_hparams(get(method), protocol)
    torch.manual_seed(seed)
    normalize = (backbone.mean, backbone.std)
    kw = {"target_prompt_size": prompt_size} if method == "vp" else {}
    prompt = get_prompt(method, backbone.input_size, backbone.channels, normalize, **kw)
    if method == "smm":   # SMM's two optimisers, as in our loop
        opts = [torch.optim.Adam(prompt.delta_parameters(), lr=hparams["prompt_lr"]),
                torch.optim.Adam(prompt.generator_parameters(), lr=hparams["generator_lr"])]
    else:
        opts = [torch.optim.Adam(prompt.parameters(), lr=hparams["prompt_lr"])]
    scheds = [multistep(o, protocol.milestone_epochs(epochs), protocol.gamma) for o in opts]
    train_loader = _loader(PILDigits(*train_data, train_tf), protocol.batch_size, True, seed)
    map_loader = _loader(PILDigits(*train_data, map_tf), protocol.batch_size, False)
    test_loader = _loader(PILDigits(*test_data, test_tf), protocol.test_batch_size, False)
    started = time.perf_counter()
    for _ in range(epochs):
        label_map = _public_ilm_map(backbone, prompt, map_loader, 10)
        prompt.train()
        for x, y in train_loader:
            for o in opts:
                o.zero_grad()
            F.cross_entropy(backbone(prompt(x))[:, label_map], y).backward()
            for o in opts:
                o.step()
        for sched in scheds:
            sched.step()
        prompt.eval()
        correct = 0
        with torch.no_grad():
            for x, y in test_loader:
                correct += int((backbone(prompt(x))[:, label_map].argmax(1) == y).sum())
    return time.perf_counter() - started, correct / len(test_data[1])


def public_lp_loop(backbone, protocol, epochs: int, seed: int, train_data, test_data, tf) -> tuple[float, float]:
    """(seconds, final test accuracy): backbone forward every batch of every epoch."""
    from reprolib.transfer.linear_probe import new_head
    from reprolib.schedules import multistep
    from reprolib.transfer.registry import get, method_hparams

    head = new_head(backbone.feature_dim, 10, seed, "cpu")
    opt = torch.optim.Adam(head.parameters(), lr=method_hparams(get("lp"), protocol)["lp_lr"])
    sched = multistep(opt, protocol.milestone_epochs(epochs), protocol.gamma)
    train_loader = _loader(PILDigits(*train_data, tf), protocol.batch_size, True, seed)
    test_loader = _loader(PILDigits(*test_data, tf), protocol.test_batch_size, False)
    started = time.perf_counter()
    for _ in range(epochs):
        for x, y in train_loader:
            with torch.no_grad():
                features = backbone.features(x)
            opt.zero_grad()
            F.cross_entropy(head(features), y).backward()
            opt.step()
        sched.step()
        correct = 0
        with torch.no_grad():
            for x, y in test_loader:
                correct += int((head(backbone.features(x)).argmax(1) == y).sum())
    return time.perf_counter() - started, correct / len(test_data[1])


def ours(backbone, method: str, protocol, epochs: int, seed: int, train_data, test_data) -> tuple[float, float]:
    """(seconds incl. feature caching / input storing / mapping passes, final test accuracy)."""
    from reprolib.data import info
    from reprolib.transfer import MethodContext, build_method
    from reprolib.transfer.train import FitSettings, Splits, fit

    started = time.perf_counter()
    ctx = MethodContext(backbone, info("digits"), protocol, epochs, seed, "cpu", None if method == "lp" else "ilm")
    settings = FitSettings(epochs, protocol.batch_size, protocol.test_batch_size, seed)
    result = fit(build_method(method, ctx), Splits(train_data, test_data), settings)
    accuracy = float((result.test_logits.argmax(1) == test_data[1]).double().mean())
    return time.perf_counter() - started, accuracy


def bench_ticket_making(artifacts: Path) -> list[dict[str, Any]]:
    """Time the embedded profile's one ticket command (IMP levels 0-8, baselines at 8) into `artifacts`.

    Issue goal: under 10 minutes on 2 cores. The per-level rows give each level's training
    time and upstream test accuracy as recorded in its sparsity.json.
    """
    from reprolib.config import load_profile
    from reprolib.sparsity.tickets import make_tickets

    profile = load_profile("embedded", artifacts=str(artifacts))
    start = time.perf_counter()
    made = make_tickets(profile, list(range(9)), kinds=("imp",), progress=False)
    made += make_tickets(profile, [profile.baseline_level], kinds=tuple(profile.baselines), progress=False)
    total = time.perf_counter() - start
    rows = [{"benchmark": f"ticket {t['kind']} level {t['level']}", "value": f"{t.get('train_seconds', 0):.1f} s",
             "accuracy": f"{t['upstream_test_accuracy']:.4f}", "note": f"density {t['density']:.4f}"}
            for t in made]
    rows.append({"benchmark": "embedded upstream + tickets 0-8 + baselines, one command (goal < 600 s)",
                 "value": f"{total:.0f} s", "maxrss": f"{_maxrss_mb():.0f} MB"})
    return rows


def run_bench(profile_name: str = "smoke", epochs: int | None = None, lp_epochs: int = 100,
              artifacts: str | None = None) -> list[dict[str, Any]]:
    from torchvision import transforms as T

    from reprolib.config import load_profile
    from reprolib.data import get_dataset
    from reprolib.protocols import get_protocol
    from reprolib.sparsity import get_network

    profile = load_profile(profile_name, **({"artifacts": artifacts} if artifacts else {}))
    protocol = get_protocol("embedded")
    epochs = epochs or protocol.epochs
    backbone, ticket = get_network(profile)
    backbone.eval().requires_grad_(False)
    train = get_dataset("digits", "train", root=profile.path("data_root")).tensors()
    test = get_dataset("digits", "test", root=profile.path("data_root")).tensors()
    norm = T.Normalize(backbone.mean, backbone.std)
    size, pad = backbone.input_size, 4
    tf_lp = T.Compose([T.Resize(size), T.ToTensor(), norm])
    tf_vp = T.Compose([T.Resize(20), T.ToTensor()])            # the prompt pads and normalises
    tf_smm_train = T.Compose([T.Resize(size + pad), T.RandomCrop(size), T.ToTensor()])
    tf_smm_test = T.Compose([T.Resize(size), T.ToTensor()])
    n_images = epochs * len(train[1])
    rows: list[dict[str, Any]] = []
    note = f"digits, {len(train[1])} train / {len(test[1])} test, {epochs} epochs, {ticket.id}"

    # LP under the RLT protocol's schedule (the public code's 100 epochs): caching saves one
    # backbone pass per epoch, so the speed-up grows with the number of epochs.
    lp_protocol = get_protocol("rlt", epochs=lp_epochs)
    lp_note = note.replace(f"{epochs} epochs", f"{lp_epochs} epochs (rlt LP schedule)")
    lp_images = lp_epochs * len(train[1])
    t_ours, a_ours = ours(backbone, "lp", lp_protocol, lp_epochs, 1, train, test)
    rows.append(_bench_row("LP: cached features (ours)", t_ours, a_ours, lp_images, lp_note))
    t_pub, a_pub = public_lp_loop(backbone, lp_protocol, lp_epochs, 1, train, test, tf_lp)
    rows.append(_bench_row("LP: backbone every epoch (public style)", t_pub, a_pub, lp_images, lp_note))
    rows.append({"benchmark": "LP speed-up (goal >= 20x)", "value": f"{t_pub / t_ours:.1f}x"})
    for method, public_tfs in (("vp", (tf_vp, tf_vp, tf_vp)), ("smm", (tf_smm_train, tf_smm_test, tf_smm_test))):
        t_ours, a_ours = ours(backbone, method, protocol, epochs, 1, train, test)
        rows.append(_bench_row(f"{method.upper()}-ILM: tensors in memory (ours)", t_ours, a_ours, n_images, note))
        t_pub, a_pub = public_prompt_loop(backbone, method, protocol, epochs, 1, train, test, *public_tfs, 20)
        rows.append(_bench_row(f"{method.upper()}-ILM: PIL DataLoader + mapping pass (public style)",
                               t_pub, a_pub, n_images, note))
        rows.append({"benchmark": f"{method.upper()} images/s ratio (goal >= 2x)", "value": f"{t_pub / t_ours:.1f}x"})
    rows.append({"benchmark": "peak memory (max RSS of this process)", "value": f"{_maxrss_mb():.0f} MB"})
    return rows


def _bench_row(name: str, seconds: float, accuracy: float, n_images: int, note: str) -> dict[str, Any]:
    return {"benchmark": name, "value": f"{seconds:.2f} s", "images/s": f"{n_images / seconds:.0f}",
            "accuracy": f"{accuracy:.4f}", "maxrss": f"{_maxrss_mb():.0f} MB", "note": note}


def main(argv: list[str] | None = None) -> int:
    import platform

    from bench_throughput import backbone_throughput   # beside this file: the script's folder is on sys.path
    from bench_throughput import to_markdown as throughput_markdown
    from bench_grouped import run as grouped_bench
    from bench_tickets import bench_tickets

    parser = argparse.ArgumentParser(prog="python bench/bench.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results.md")
    parser.add_argument("--profile", default="embedded", help="whose dense upstream model to use (smoke | embedded)")
    parser.add_argument("--reuse-tickets", action="store_true",
                        help="use the profile's existing tickets instead of timing the embedded ticket command")
    parser.add_argument("--epochs", type=int, default=None, help="default: the embedded protocol's")
    parser.add_argument("--lp_epochs", type=int, default=100, help="LP epochs (default: rlt's 100)")
    parser.add_argument("--quick", action="store_true", help="passed on to bench_tickets")
    parser.add_argument("--no-sweep", action="store_true", help="skip timing the whole sweep (grouped and not)")
    args = parser.parse_args(argv)
    header = (f"# reprolib benchmarks\n\nMachine: {platform.machine()}, {torch.get_num_threads()} torch threads, "
              f"torch {torch.__version__}. Timings depend on the load of the machine when measured.\n\n")
    text = header
    with tempfile.TemporaryDirectory() as scratch:
        artifacts = None
        if not args.reuse_tickets:   # time the real command; its dense model then serves the loops below
            text += to_markdown(bench_ticket_making(Path(scratch)), "Embedded upstream model and tickets") + "\n"
            artifacts = scratch if args.profile == "embedded" else None
        text += to_markdown(run_bench(args.profile, args.epochs, args.lp_epochs, artifacts), "Transfer training loops")
        text += "\n" + to_markdown(grouped_bench(args.profile, epochs=args.epochs, sweep=not args.no_sweep,
                                                  artifacts=artifacts), "Grouped runs and loop limits")
    text += "\n" + to_markdown(bench_tickets(quick=args.quick), "Upstream and tickets")
    from reprolib.config import load_profile
    text += "\n" + throughput_markdown(backbone_throughput(load_profile(args.profile).backbone))
    atomic_write(args.out, lambda f: f.write(text), "w")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
