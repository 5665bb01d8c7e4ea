"""`python -m reprolib <command> ...`: one entry point, commands loaded lazily.

Each command lives in its own module, which defines `add_arguments(parser)` and
`run(args) -> int`. Only the chosen command's module is imported, so `--help` and
simple commands stay fast. A ReprolibError becomes one line on stderr and exit 2.
A command that writes results also defines `results_folders(args)`: the folders whose lock
(reprolib.sweep.lock) it holds while it runs, taken after its arguments are checked and before
it writes anything, so a second writer on a folder is refused having written nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys

from reprolib.errors import ReprolibError

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("reprolib.sweep.prepare", "prepare or inspect datasets"),
    "upstream": ("reprolib.sparsity.upstream_cli", "train the embedded upstream model (IMP level 0)"),
    "tickets": ("reprolib.sparsity.cli", "make lottery tickets (IMP) and pruning baselines"),
    "transfer": ("reprolib.transfer.cli", "one transfer run (LP, VP, SMM, watermark prompts)"),
    "sweep": ("reprolib.sweep.cli", "run the profile's grid of transfer runs, resumably"),
    "ledger": ("reprolib.study.ledger_cli", "build the tidy results table from all run records"),
    "compare": ("reprolib.study.compare", "compare two ledgers metric for metric (did a change move a number?)"),
    "plan": ("reprolib.sweep.planner", "power planner: what each claim's design decides, and what would, priced"),
    "reprogrammer": ("reprolib.reprogrammer.cli", "text-image encoder reprogramming and OOD"),
    "notebooks": ("reprolib.notebooks.runner", "execute the study notebooks with papermill"),
    "track": ("reprolib.study.tracking", "optional: TensorBoard / wandb (offline) views of the run records"),
}


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (`error: ...`, exit 2) instead of a usage block."""

    def error(self, message: str):
        raise ReprolibError(f"{message} (see `{self.prog} --help`)")


def _usage() -> str:
    lines = ["usage: python -m reprolib <command> [options]", "", "commands:"]
    lines += [f"  {name:<13} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def _writer_lock(name: str, module, args: argparse.Namespace) -> contextlib.AbstractContextManager:
    """The lock of the folders the command writes (its `results_folders(args)`), else nothing."""
    folders = module.results_folders(args) if hasattr(module, "results_folders") else []
    if not folders:
        return contextlib.nullcontext()
    lock = importlib.import_module("reprolib.sweep.lock")   # the top of the package, by name like the commands
    return lock.sweep_locks(folders, what=f"the {name} command")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    try:
        if name not in COMMANDS:
            valid = ", ".join(COMMANDS)
            raise ReprolibError(f"unknown command {name!r}; valid choices: {valid}")
        module = importlib.import_module(COMMANDS[name][0])
        parser = _OneLineParser(prog=f"python -m reprolib {name}", description=COMMANDS[name][1])
        module.add_arguments(parser)
        args = parser.parse_intermixed_args(rest)   # positionals after options too (tickets import --profile P FILE)
        with _writer_lock(name, module, args):
            return int(module.run(args) or 0)
    except ReprolibError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished runs are kept, rerun to resume", file=sys.stderr)
        return 130
