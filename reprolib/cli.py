"""`python -m reprolib <command> ...`: one entry point, commands loaded lazily.

Each command lives in its own module, which defines `add_arguments(parser)` and
`run(args) -> int`. Only the chosen command's module is imported, so `--help` and
simple commands stay fast. A ReprolibError becomes one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
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
    "ledger": ("reprolib.study.ledger", "build the tidy results table from all run records"),
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
        return int(module.run(args) or 0)
    except ReprolibError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished runs are kept, rerun to resume", file=sys.stderr)
        return 130
